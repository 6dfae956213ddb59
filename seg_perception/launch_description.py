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


REPLAY_OUTPUTS = [
    "semantic/class_map", "semantic/overlay", "instance/instance_map", "instance/detections", "instance/overlay",
    "panoptic/panoptic_map", "panoptic/overlay",
]


def replay_launch() -> Any:
    """bag_player -> perception_node -> bag_recorder, on the bag's clock (``use_sim_time``).

    Launch arguments: ``bag`` (required), ``out_bag`` (recorded outputs, must not exist),
    ``rate``, ``loop``, ``start_offset``, ``namespace`` (the camera's, default ``camera``),
    ``image`` (its image topic inside the namespace, default ``image_raw``), ``params_file``.
    The player publishes every topic of the bag and ``/clock``; the recorder writes the
    perception outputs under the namespace.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    default_params = PathJoinSubstitution([FindPackageShare("seg_perception"), "config", "perception.yaml"])
    namespace = LaunchConfiguration("namespace")
    sim_time = {"use_sim_time": True}
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 folder to play (sqlite3 or mcap)"),
            DeclareLaunchArgument("out_bag", default_value="replay_outputs", description="bag for the outputs"),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
            DeclareLaunchArgument("loop", default_value="false", description="play the bag in a loop"),
            DeclareLaunchArgument("start_offset", default_value="0.0", description="seconds into the bag"),
            DeclareLaunchArgument("namespace", default_value="camera", description="camera namespace"),
            DeclareLaunchArgument("image", default_value="image_raw", description="image topic in the namespace"),
            DeclareLaunchArgument("params_file", default_value=default_params, description="perception parameters"),
            Node(
                package="seg_perception",
                executable="bag_player",
                name="bag_player",
                parameters=[{
                    "bag": LaunchConfiguration("bag"),
                    "rate": LaunchConfiguration("rate"),
                    "loop": LaunchConfiguration("loop"),
                    "start_offset": LaunchConfiguration("start_offset"),
                    "exit_when_done": False,  # keep /clock alive so the last outputs are recorded
                }],
                output="screen",
            ),
            Node(
                package="seg_perception",
                executable="perception_node",
                name="perception",
                namespace=namespace,
                parameters=[LaunchConfiguration("params_file"), sim_time],
                remappings=[("image", LaunchConfiguration("image"))],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package="seg_perception",
                executable="bag_recorder",
                name="bag_recorder",
                namespace=namespace,
                parameters=[{"bag": LaunchConfiguration("out_bag"), "topics": REPLAY_OUTPUTS}, sim_time],
                output="screen",
            ),
        ]
    )
