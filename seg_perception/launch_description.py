"""The launch description every camera node's launch file returns (needs launch_ros, i.e. a
ROS install; imported only by the files in launch/)."""

from __future__ import annotations

from typing import Any


def camera_node_launch(executable: str, name: str, params_file: str) -> Any:
    """One node of this package on one camera.

    Launch arguments: ``namespace`` (default ``camera``), ``image`` (input topic, default
    ``image_raw``), ``compressed_image``, ``params_file`` (default the installed
    ``config/<params_file>``) and ``use_sim_time``.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    default_params = PathJoinSubstitution([FindPackageShare("seg_perception"), "config", params_file])
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
                executable=executable,
                name=name,
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
