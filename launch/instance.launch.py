"""Launch instance_segmentation_node for one camera (Mask R-CNN instance maps).

ros2 launch seg_perception instance.launch.py namespace:=camera image:=/camera/image_raw
ros2 launch seg_perception instance.launch.py params_file:=/path/to/my_instance.yaml use_sim_time:=true
"""

from seg_perception.ros.launch_description import camera_node_launch


def generate_launch_description():
    return camera_node_launch(
        executable="instance_segmentation_node", name="instance_segmentation", params_file="instance.yaml"
    )
