"""Launch perception_node: semantic + instance + panoptic on one camera subscription.

    ros2 launch seg_perception perception.launch.py namespace:=camera image:=/camera/image_raw
    ros2 launch seg_perception perception.launch.py params_file:=/path/to/my_perception.yaml
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("seg_perception"), "config", "perception.yaml"])
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="camera", description="node namespace"),
            DeclareLaunchArgument("image", default_value="image_raw", description="camera image topic"),
            DeclareLaunchArgument(
                "compressed_image", default_value="image_raw/compressed", description="compressed image topic"
            ),
            DeclareLaunchArgument("params_file", default_value=default_params, description="parameter file"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
            Node(
                package="seg_perception",
                executable="perception_node",
                name="perception",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file"), {"use_sim_time": LaunchConfiguration("use_sim_time")}],
                remappings=[
                    ("image", LaunchConfiguration("image")),
                    ("image/compressed", LaunchConfiguration("compressed_image")),
                ],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
