"""bag_player: plays a rosbag2 (sqlite3 or mcap) into the live graph with its recorded timing,
for replaying drives through running nodes (`ros2 bag play` is not installable from PyPI;
where it is, this node does the same job with the options a segmentation replay needs).

Messages are published as recorded (raw CDR, no re-serialisation) at ``start + (t - t0) / rate``
where t is the bag's log time. ``/clock`` carries the bag's time, so nodes started with
``use_sim_time: true`` measure latency against the recording's clock.

Parameters: ``bag`` (required), ``rate`` (1.0), ``loop`` (false), ``start_offset`` (seconds into
the bag), ``topics`` (empty: every topic whose message type is importable here), ``clock``
(true) and ``clock_frequency`` (Hz), ``qos_reliability``/``qos_depth`` of the publishers,
``wait_for_subscribers`` (topics that must have ``min_subscribers`` subscribers before
playing, waiting at most ``wait_timeout`` seconds) and ``exit_when_done`` (true, like ``ros2 bag play``).
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.publisher import Publisher
from rosgraph_msgs.msg import Clock

from seg_perception.errors import BagError, ConfigError, SegPerceptionError
from seg_perception.io import bags
from seg_perception.ros.parameters import declare_from_defaults
from seg_perception.ros.qos import qos_profile
from seg_perception.ros.runner import run_node

DEFAULTS: dict[str, Any] = {
    "bag": "",
    "rate": 1.0,
    "loop": False,
    "start_offset": 0.0,
    "topics": [],
    "clock": True,
    "clock_frequency": 100.0,
    "qos_reliability": "reliable",
    "qos_depth": 10,
    "wait_for_subscribers": [],
    "min_subscribers": 1,
    "wait_timeout": 60.0,
    "exit_when_done": True,
}


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name``; ConfigError when it is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"message type {msgtype} is not installed here ({err})") from err


class BagPlayer(Node):
    def __init__(self, node_name: str = "bag_player", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = declare_from_defaults(self, DEFAULTS)
        if not p["bag"]:
            raise ConfigError("parameter bag: the bag to play is required (-p bag:=/path/to/bag)")
        if not p["rate"] > 0:
            raise ConfigError(f"parameter rate: must be > 0, got {p['rate']}")
        if p["start_offset"] < 0:
            raise ConfigError(f"parameter start_offset: must be >= 0, got {p['start_offset']}")
        self.p = p
        self.reader = bags.open_bag(p["bag"])
        self.connections = self._select(p["topics"])
        qos = qos_profile(p["qos_reliability"], p["qos_depth"])
        self.publishers_by_topic: dict[str, Publisher[Any]] = {
            c.topic: self.create_publisher(message_class(c.msgtype), c.topic, qos) for c in self.connections
        }
        self.clock_pub = self.create_publisher(Clock, "/clock", 10) if p["clock"] else None
        self.bag_start = self.reader.start_time + round(p["start_offset"] * 1e9)
        self._sim_anchor: tuple[float, int] | None = None  # (wall monotonic, bag ns) while playing
        self._lock = threading.Lock()
        self.published = 0
        self.loops = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        if self.clock_pub is not None:
            self.create_timer(1.0 / p["clock_frequency"], self._publish_clock)
        self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"playing {p['bag']} ({len(self.connections)} topics, rate {p['rate']:g}"
            f"{', loop' if p['loop'] else ''}, from {p['start_offset']:g} s)"
        )

    def _select(self, topics: list[str]) -> list[Any]:
        by_topic = {c.topic: c for c in self.reader.connections}
        missing = [t for t in topics if t not in by_topic]
        if missing:
            raise BagError(f"topics {missing} are not in the bag; it has {sorted(by_topic)}")
        chosen = [by_topic[t] for t in topics] if topics else list(self.reader.connections)
        playable = []
        for conn in chosen:
            try:
                message_class(conn.msgtype)
                playable.append(conn)
            except ConfigError as err:
                if topics:  # asked for by name: an error; otherwise skipped with a warning
                    raise
                self.get_logger().warning(f"not playing {conn.topic}: {err}")
        if not playable:
            raise BagError("nothing to play: no topic of the bag has an installed message type")
        return playable

    def now_bag_ns(self) -> int | None:
        """The bag time being played now (what /clock says), or None before playback."""
        with self._lock:
            if self._sim_anchor is None:
                return None
            wall, bag_ns = self._sim_anchor
        return bag_ns + round((time.monotonic() - wall) * self.p["rate"] * 1e9)

    def _publish_clock(self) -> None:
        ns = self.now_bag_ns()
        if ns is not None and self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

    def _wait_for_subscribers(self) -> bool:
        topics = list(self.p["wait_for_subscribers"])
        deadline = time.monotonic() + self.p["wait_timeout"]
        while topics and not self._stop.is_set():
            topics = [t for t in topics if self.count_subscribers(t) < self.p["min_subscribers"]]
            if not topics:
                break
            if time.monotonic() > deadline:
                self.get_logger().error(
                    f"no subscriber on {topics} within {self.p['wait_timeout']:g} s; playing anyway"
                )
                break
            time.sleep(0.05)
        return not self._stop.is_set()

    def _play(self) -> None:
        try:
            if not self._wait_for_subscribers():
                return
            while not self._stop.is_set():
                self._play_once()
                if not self.p["loop"]:
                    break
                self.loops += 1
        except SegPerceptionError as err:
            self.get_logger().error(f"playback stopped: {err}")
        finally:
            self.get_logger().info(f"played {self.published} messages")
            self.done.set()

    def _play_once(self) -> None:
        rate = self.p["rate"]
        start_wall = time.monotonic()
        with self._lock:
            self._sim_anchor = (start_wall, self.bag_start)
        for conn, logtime, raw in bags.read_messages(self.reader, self.connections):
            if logtime < self.bag_start:
                continue
            due = start_wall + (logtime - self.bag_start) / 1e9 / rate
            while not self._stop.is_set() and (delay := due - time.monotonic()) > 0:
                time.sleep(min(delay, 0.05))
            if self._stop.is_set():
                return
            self._publish_clock()  # the clock reaches the message's time before the message
            self.publishers_by_topic[conn.topic].publish(bytes(raw))
            self.published += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.reader.close()


def main(args: list[str] | None = None) -> int:
    """Spin until playback ends (unless exit_when_done is false) or Ctrl-C."""
    return run_node(BagPlayer, args, until=lambda node: node.done.is_set() and node.p["exit_when_done"])


if __name__ == "__main__":
    raise SystemExit(main())
