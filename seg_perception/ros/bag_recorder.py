"""bag_recorder: writes chosen topics of the live graph to a rosbag2 (sqlite3 or mcap) with
`rosbags` (`ros2 bag record` is not installable from PyPI).

Topics are subscribed as soon as they appear in the graph (their type is taken from it) and
recorded as received, raw CDR, stamped with the node's clock (the bag's time under
``use_sim_time``, as ``ros2 bag record --use-sim-time``). Ctrl-C closes the bag properly.

Parameters: ``bag`` (output folder, must not exist), ``topics`` (required), ``storage``
(mcap, the default, | sqlite3), ``qos_reliability`` (reliable: every output; best_effort also hears
best-effort publishers) and ``qos_depth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rclpy.node import Node
from rosbags.rosbag2 import Writer

from seg_perception.errors import BagError, ConfigError
from seg_perception.io import bags
from seg_perception.ros.bag_player import message_class
from seg_perception.ros.clocks import steady_clock
from seg_perception.ros.parameters import declare_from_defaults
from seg_perception.ros.qos import qos_profile
from seg_perception.ros.runner import run_node

DEFAULTS: dict[str, Any] = {
    "bag": "",
    "topics": [],
    "storage": "mcap",  # rosbag2's default storage since Iron
    "qos_reliability": "reliable",
    "qos_depth": 100,
    "discovery_period": 0.2,
}


class BagRecorder(Node):
    def __init__(self, node_name: str = "bag_recorder", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = declare_from_defaults(self, DEFAULTS)
        if not p["bag"] or not p["topics"]:
            raise ConfigError("parameters bag and topics are required (-p bag:=out -p topics:=[/a,/b])")
        if p["storage"] not in bags.STORAGES:
            raise ConfigError(f"parameter storage: one of {sorted(bags.STORAGES)}, got {p['storage']!r}")
        if Path(p["bag"]).exists():
            raise BagError(f"output bag {p['bag']} already exists")
        self.p = p
        self.topics = [self.resolve_topic_name(t) for t in p["topics"]]
        self.qos = qos_profile(p["qos_reliability"], p["qos_depth"])
        self.writer: Writer | None = Writer(Path(p["bag"]), version=8, storage_plugin=bags.STORAGES[p["storage"]])
        self.writer.open()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = dict.fromkeys(self.topics, 0)
        self._recording: list[Any] = []
        # A steady timer: under use_sim_time a ROS-time timer would wait for /clock to start.
        self.create_timer(p["discovery_period"], self._discover, clock=steady_clock())
        self._discover()
        self.get_logger().info(f"recording {self.topics} to {p['bag']} ({p['storage']})")

    def _discover(self) -> None:
        """Subscribe to every wanted topic that has appeared in the graph since the last look."""
        if self.writer is None:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.connections or topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                cls = message_class(msgtype)
            except ConfigError as err:
                self.get_logger().error(f"cannot record {topic}: {err}")
                self.connections[topic] = None
                continue
            try:
                self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=bags.TYPESTORE)
            except Exception as err:
                self.get_logger().error(f"cannot record {topic} ({msgtype}): {err}")
                self.connections[topic] = None
                continue
            self._recording.append(
                self.create_subscription(cls, topic, lambda raw, t=topic: self._write(t, raw), self.qos, raw=True)
            )

    def _write(self, topic: str, raw: bytes) -> None:
        if self.writer is None:
            return
        self.writer.write(self.connections[topic], self.get_clock().now().nanoseconds, raw)
        self.counts[topic] += 1

    def close(self) -> None:
        """Close the bag (writes metadata.yaml); called once spinning has stopped."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            self.get_logger().info(f"closed {self.p['bag']}: " + ", ".join(f"{t} {n}" for t, n in self.counts.items()))


def main(args: list[str] | None = None) -> int:
    return run_node(BagRecorder, args)


if __name__ == "__main__":
    raise SystemExit(main())
