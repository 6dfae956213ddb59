"""Launch perception_node: semantic + instance + panoptic on one camera subscription.

ros2 launch seg_perception perception.launch.py namespace:=camera image:=/camera/image_raw
ros2 launch seg_perception perception.launch.py params_file:=/path/to/my_perception.yaml use_sim_time:=true
ros2 launch seg_perception perception.launch.py namespace:=cameras cameras:="[front, front_left, rear]"
ros2 launch seg_perception perception.launch.py lifecycle:=true autostart:=false   # then: ros2 lifecycle set ...
"""

from seg_perception.ros.launch_description import camera_node_launch


def generate_launch_description():
    # The vehicle entry point: a managed node, configured and activated at launch (autostart).
    return camera_node_launch(
        executable="perception_node", name="perception", params_file="perception.yaml", lifecycle=True
    )
