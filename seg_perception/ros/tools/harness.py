"""Run real nodes over DDS from Python: a node in its own process, and an in-process client
node that publishes and records. Used by the demo and by the ROS graph tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_perception.resources import import_root


def node_env() -> dict[str, str]:
    """Environment for a node process: ours, with this package importable from a checkout."""
    env = dict(os.environ)
    root = str(import_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def node_command(module: str, namespace: str, params: dict[str, Any], params_file: str | None = None) -> list[str]:
    """``python -m module --ros-args`` with a namespace, an optional parameter file and -p overrides."""
    cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
    if params_file:
        cmd += ["--params-file", params_file]
    for key, value in params.items():
        if isinstance(value, bool):
            value = str(value).lower()
        cmd += ["-p", f"{key}:={value if value != '' else chr(34) * 2}"]
    return cmd


class NodeProcess:
    """A node executable running in its own process; stopped with SIGINT like Ctrl-C."""

    def __init__(self, module: str, namespace: str, params: dict[str, Any], params_file: str | None = None) -> None:
        self._start(node_command(module, namespace, params, params_file), node_env())

    @classmethod
    def from_command(
        cls, command: list[str], env: dict[str, str], cwd: str | os.PathLike[str] | None = None
    ) -> NodeProcess:
        """Any node command line (an installed executable, a sourced shell that execs one)."""
        node = cls.__new__(cls)
        node._start(command, env, cwd)
        return node

    def _start(self, command: list[str], env: dict[str, str], cwd: str | os.PathLike[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


class GraphClient:
    """An rclpy node in the test process, spun on a background thread that is stopped and
    joined before rclpy shuts down (a spinning executor at shutdown aborts natively)."""

    def __init__(self, name: str = "test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type: type, topic: str, reliability: str = "reliable", depth: int = 50) -> None:
        qos = QoSProfile(depth=depth)
        qos.reliability = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT

        def store(msg: Any, topic: str = topic) -> None:
            with self._lock:
                self.received[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, store, qos)

    def publisher(self, msg_type: type, topic: str, depth: int = 10) -> Publisher[Any]:
        return self.node.create_publisher(msg_type, topic, depth)

    def messages(self, topic: str) -> list[Any]:
        with self._lock:
            return [m for _, m in self.received[topic]]

    def timed(self, topic: str) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self.received[topic])

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def now_msg(self) -> Time:
        return self.node.get_clock().now().to_msg()

    def now_msg_header(self, frame_id: str) -> Header:
        return Header(stamp=self.now_msg(), frame_id=frame_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def status_values(status: Any) -> dict[str, str]:
    """A DiagnosticStatus as a dict: its key/values plus ``level`` ("0" OK, "1" WARN) and ``message``."""
    level = status.level[0] if isinstance(status.level, bytes) else int(status.level)  # a byte field in rclpy
    return {"level": str(level), "message": status.message, **{kv.key: kv.value for kv in status.values}}


def find_message(messages: Iterable[Any], stamp: Any) -> Any | None:
    for msg in messages:
        if msg.header.stamp.sec == stamp.sec and msg.header.stamp.nanosec == stamp.nanosec:
            return msg
    return None
