"""Launch perception_node: semantic + instance + panoptic on one camera subscription.

    ros2 launch seg_perception perception.launch.py namespace:=camera image:=/camera/image_raw
    ros2 launch seg_perception perception.launch.py params_file:=/path/to/my_perception.yaml use_sim_time:=true
"""

from seg_perception.launch_description import camera_node_launch


def generate_launch_description():  # noqa: ANN201 - launch's entry point
    return camera_node_launch(executable="perception_node", name="perception", params_file="perception.yaml")
