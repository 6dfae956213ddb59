"""A stock camera: a plain rclpy publisher of ``sensor_msgs/Image`` with default settings.

It stands for a camera driver the node's user does not own: it imports nothing from
seg_perception and loads no DDS profile of ours (run it as a script, with a clean
environment: :func:`stock_camera_command`). ``--qos default`` is rclpy's default (reliable,
keep last 10: most drivers, ``ros2 bag play``), ``--qos sensor_data`` the best-effort
sensor-data profile. It publishes one smooth random scene with a fresh header stamp (ROS time)
per frame at ``--rate`` Hz for ``--seconds``, after ``--wait`` seconds at most for a
subscriber, and prints one JSON line: frames sent, seconds, the stamps it sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def stock_camera_command(**options: object) -> list[str]:
    """The command line that runs this file as a script (``topic="/cam/image", rate=10, ...``)."""
    cmd = [sys.executable, os.path.abspath(__file__)]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def stock_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without any Fast DDS profile: a camera we do not configure."""
    env = dict(os.environ if env is None else env)
    for var in (
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
        "FASTDDS_BUILTIN_TRANSPORTS",
        "RMW_FASTRTPS_USE_QOS_FROM_XML",
    ):
        env.pop(var, None)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", default="/camera/image")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--qos", choices=("default", "sensor_data"), default="default")
    parser.add_argument("--encoding", default="rgb8", help="rgb8 (3 bytes a pixel) or any name: a bad-input test")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a subscriber")
    parser.add_argument("--frame-id", default="stock_camera")
    args = parser.parse_args()

    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("stock_camera")
    pub = node.create_publisher(Image, args.topic, qos_profile_sensor_data if args.qos == "sensor_data" else 10)
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (args.height // 40 + 1, args.width // 40 + 1, 3), np.uint8)
    pixels = np.repeat(np.repeat(coarse, 40, axis=0), 40, axis=1)[: args.height, : args.width]
    msg = Image(height=args.height, width=args.width, encoding=args.encoding, is_bigendian=0, step=args.width * 3)
    msg.data = pixels.tobytes()
    msg.header.frame_id = args.frame_id

    deadline = time.monotonic() + args.wait
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stamps = []
    start = next_frame = time.monotonic()
    try:
        while time.monotonic() - start < args.seconds:
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            stamps.append([msg.header.stamp.sec, msg.header.stamp.nanosec])
            next_frame += 1.0 / args.rate
            delay = next_frame - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_frame = time.monotonic()  # cannot keep up: never burst
        elapsed = time.monotonic() - start
        time.sleep(1.0)  # let a reliable writer finish repairs before the participant goes
    except KeyboardInterrupt:  # stopped early (SIGINT), like a driver
        elapsed = time.monotonic() - start
    print(
        json.dumps(
            {"sent": len(stamps), "seconds": elapsed, "subscribers": pub.get_subscription_count(), "stamps": stamps}
        ),
        flush=True,
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
