"""The launch description every camera node's launch file returns (needs launch_ros, i.e. a
ROS install; imported only by the files in launch/)."""

from __future__ import annotations

from typing import Any


def camera_node_launch(executable: str, name: str, params_file: str, lifecycle: bool = False) -> Any:
    """One node of this package serving one camera, or several (``cameras``).

    Launch arguments: ``namespace`` (default ``camera``), ``image`` (input topic, default
    ``image_raw``), ``compressed_image``, ``params_file`` (default the installed
    ``config/<params_file>``), ``cameras`` (e.g. ``[front, front_left]``: one node batching
    every camera, topics ``<namespace>/<camera>/image`` ...; default ``[]`` = one camera),
    ``use_sim_time``, ``lifecycle`` (a managed node; default ``lifecycle``) and ``autostart``
    (configure and activate a managed node at launch; default true).
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
    from launch.conditions import IfCondition, UnlessCondition
    from launch.events import matches_action
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from launch_ros.substitutions import FindPackageShare
    from lifecycle_msgs.msg import Transition

    default_params = PathJoinSubstitution([FindPackageShare("seg_perception"), "config", params_file])
    managed = LaunchConfiguration("lifecycle")
    node_args: dict[str, Any] = dict(
        package="seg_perception",
        executable=executable,
        name=name,
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "cameras": LaunchConfiguration("cameras"),
                "lifecycle": managed,
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("image/compressed", LaunchConfiguration("compressed_image")),
        ],
        output="screen",
        emulate_tty=True,
    )
    plain_node = Node(condition=UnlessCondition(managed), **node_args)
    managed_node = LifecycleNode(condition=IfCondition(managed), **node_args)

    def transition(transition_id: int, **kwargs: Any) -> EmitEvent:
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matches_action(managed_node), transition_id=transition_id),
            **kwargs,
        )

    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="camera", description="node namespace"),
            DeclareLaunchArgument("image", default_value="image_raw", description="camera image topic"),
            DeclareLaunchArgument(
                "compressed_image", default_value="image_raw/compressed", description="compressed image topic"
            ),
            DeclareLaunchArgument("params_file", default_value=default_params, description="parameter file"),
            DeclareLaunchArgument(
                "cameras",
                default_value="[]",
                description="camera namespaces served by one node, e.g. [front, front_left]",
            ),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
            DeclareLaunchArgument(
                "lifecycle", default_value=str(lifecycle).lower(), description="run as a managed (rclpy.lifecycle) node"
            ),
            DeclareLaunchArgument(
                "autostart", default_value="true", description="configure and activate the managed node at launch"
            ),
            plain_node,
            managed_node,
            # Managed: configure at launch, activate once configured (a failed configure stays
            # unconfigured, visible through `ros2 lifecycle get`).
            RegisterEventHandler(
                OnStateTransition(
                    target_lifecycle_node=managed_node,
                    goal_state="inactive",
                    entities=[transition(Transition.TRANSITION_ACTIVATE)],
                ),
                condition=IfCondition(LaunchConfiguration("autostart")),
            ),
            transition(Transition.TRANSITION_CONFIGURE, condition=IfCondition(LaunchConfiguration("autostart"))),
        ]
    )


REPLAY_OUTPUTS = [
    "semantic/class_map",
    "semantic/overlay",
    "instance/instance_map",
    "instance/detections",
    "instance/overlay",
    "panoptic/panoptic_map",
    "panoptic/overlay",
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
                parameters=[
                    {
                        "bag": LaunchConfiguration("bag"),
                        "rate": LaunchConfiguration("rate"),
                        "loop": LaunchConfiguration("loop"),
                        "start_offset": LaunchConfiguration("start_offset"),
                        "exit_when_done": False,  # keep /clock alive so the last outputs are recorded
                    }
                ],
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
