"""Launch semantic_segmentation_node for one camera (DeepLab class maps).

ros2 launch seg_perception semantic.launch.py namespace:=camera image:=/camera/image_raw
ros2 launch seg_perception semantic.launch.py params_file:=/path/to/my_semantic.yaml use_sim_time:=true
"""

from seg_perception.ros.launch_description import camera_node_launch


def generate_launch_description():
    return camera_node_launch(
        executable="semantic_segmentation_node", name="semantic_segmentation", params_file="semantic.yaml"
    )
