"""A node that gets no frames says why, and its input QoS follows the camera: for every node
kind (semantic, instance, perception), managed or plain, one camera or several, lazy or not.
Cameras are stock rclpy publishers in their own processes (no DDS profile of ours)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from sensor_msgs.msg import Image

from seg_perception.config.records import node_defaults
from seg_perception.ros.tools.harness import GraphClient, NodeProcess, node_command, node_env
from seg_perception.ros.tools.stock_camera import stock_camera_command, stock_environment
from seg_perception.ros.transport import profile_env

from .helpers import Lifecycle, newest_status, wait_status

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SEMANTIC = "seg_perception.ros.semantic_node"
INSTANCE = "seg_perception.ros.instance_node"
PERCEPTION = "seg_perception.ros.perception_node"


@contextmanager
def graph(
    module: str, namespace: str, params: dict[str, Any], node_env_extra: dict[str, str] | None = None
) -> Iterator[tuple[NodeProcess, GraphClient]]:
    """The node in its own process (our runner picks its transport) and a listener on /diagnostics."""
    env = dict(stock_environment(node_env()), **(node_env_extra or {}))
    node = NodeProcess.from_command(node_command(module, namespace, params), env)
    client = GraphClient(f"diag_client_{namespace.strip('/')}")
    client.subscribe(DiagnosticArray, "/diagnostics", depth=200)
    try:
        yield node, client
    finally:
        client.close()
        assert node.stop() == 0, node.output


@contextmanager
def camera(
    topic: str, qos: str = "default", width: int = 320, height: int = 240, rate: float = 10.0, encoding: str = "rgb8"
) -> Iterator[NodeProcess]:
    cam = NodeProcess.from_command(
        stock_camera_command(
            topic=topic, qos=qos, width=width, height=height, rate=rate, seconds=120, encoding=encoding
        ),
        stock_environment(node_env()),
    )
    try:
        yield cam
    finally:
        cam.stop()


def small(node: str, **overrides: Any) -> dict[str, Any]:
    params = node_defaults(node)
    params.update(diagnostics_period=0.5, **overrides)
    return params


def test_incompatible_qos_turns_diagnostics_warn_with_the_cause_within_10_s() -> None:
    """input_reliability: reliable against a best-effort camera: the subscription never matches."""
    ns = "/diag_qos"
    with (
        graph(SEMANTIC, ns, small("semantic", input_reliability="reliable")) as (node, client),
        camera(f"{ns}/image", qos="sensor_data"),
    ):
        assert client.wait_for(lambda: client.node.count_publishers(f"{ns}/image") > 0, 30)
        started = time.monotonic()
        status = wait_status(client, ns, ": camera (default)", lambda s: s.get("level") == "1", 10)
        assert time.monotonic() - started <= 10.5, status
        assert "incompatible QoS (RELIABILITY)" in status["message"], status
        assert "best_effort" in status["message"] and "input_reliability: auto" in status["message"], status
        assert status["input_status"] == "incompatible_qos" and status["publishers"] == "1", status
        summary = newest_status(client, ns)
        assert summary["level"] == "1" and "incompatible QoS" in summary["message"], summary
        time.sleep(1.5)
    assert node.output.count("incompatible QoS (RELIABILITY)") == 1, node.output  # logged once


def test_frames_lost_as_best_effort_fragments_are_named_as_the_cause(tmp_path: Path) -> None:
    """The situation the node was blind to: 1080p best effort into Fast DDS defaults (the user's
    own profile replaces ours). Nearly every frame is lost; the node says so and why."""
    stock_profile = tmp_path / "stock.xml"
    stock_profile.write_text(
        '<?xml version="1.0" encoding="UTF-8" ?><dds xmlns="http://www.eprosima.com">'
        '<profiles><participant profile_name="stock" is_default_profile="true"><rtps/>'
        "</participant></profiles></dds>"
    )
    ns = "/diag_lost"
    with (
        graph(SEMANTIC, ns, small("semantic"), profile_env(stock_profile)) as (node, client),
        camera(f"{ns}/image", qos="sensor_data", width=1920, height=1080),
    ):
        status = wait_status(
            client, ns, ": camera (default)", lambda s: s.get("input_status") == "lost_in_transport", 30
        )
        assert status.get("level") == "1", status
        assert "lost in transport" in status["message"] and "publish reliable" in status["message"], status
        assert int(status["frames_lost"]) > int(status["frames_received"]), status
    assert "rmem_max" not in node.output  # the user's own profile: our buffer advice does not apply


def test_undecodable_frames_are_named_as_the_cause() -> None:
    ns = "/diag_encoding"
    with graph(SEMANTIC, ns, small("semantic")) as (_, client), camera(f"{ns}/image", encoding="32FC7"):
        status = wait_status(client, ns, ": camera (default)", lambda s: s.get("input_status") == "bad_input", 30)
        assert status["level"] == "1" and "cannot be decoded" in status["message"], status
        assert "32FC7" in status["message"], status


def test_managed_multi_camera_perception_node_follows_each_cameras_qos() -> None:
    """Perception node, lifecycle: true, two cameras: each subscription follows its own camera,
    re-checked when a second, best-effort publisher joins the reliable camera's topic."""
    ns = "/diag_managed"
    params = small("perception", lifecycle=True, cameras=["front", "rear"])
    with graph(PERCEPTION, ns, params) as (node, client):
        lifecycle = Lifecycle(client, f"{ns}/perception_node")
        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE), node.output
        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE), node.output
        client.subscribe(Image, f"{ns}/front/semantic/class_map")
        client.subscribe(Image, f"{ns}/rear/semantic/class_map")
        with camera(f"{ns}/front/image", qos="default"), camera(f"{ns}/rear/image", qos="sensor_data"):
            front = wait_status(client, ns, ": camera front", lambda s: s.get("input_reliability") == "reliable", 30)
            rear = wait_status(client, ns, ": camera rear", lambda s: s.get("publishers") == "1", 30)
            assert rear["input_reliability"] == "best_effort", rear
            assert client.wait_for(
                lambda: (
                    client.messages(f"{ns}/front/semantic/class_map")
                    and client.messages(f"{ns}/rear/semantic/class_map")
                ),
                60,
            ), node.output[-3000:]
            with camera(f"{ns}/front/image", qos="sensor_data"):
                front = wait_status(client, ns, ": camera front", lambda s: s.get("publishers") == "2", 30)
                front = wait_status(
                    client, ns, ": camera front", lambda s: s.get("input_reliability") == "best_effort", 5
                )
                assert front["input_reliability"] == "best_effort", front
        assert node.output.count(f"input {ns}/front/image: 2 publishers") == 1, node.output


def test_lazy_instance_node_reports_an_unwatched_camera_as_unsubscribed_not_silent() -> None:
    ns = "/diag_lazy"
    with graph(INSTANCE, ns, small("instance", lazy=True)) as (node, client), camera(f"{ns}/image"):
        time.sleep(4.0)  # longer than input_timeout: an unwatched camera is not a fault
        status = wait_status(client, ns, ": camera (default)", lambda s: s.get("input_status") == "unsubscribed", 10)
        assert status["level"] == "0" and status["input_subscribed"] == "False", status
        client.subscribe(Image, f"{ns}/instance/instance_map")
        assert client.wait_for(lambda: client.messages(f"{ns}/instance/instance_map"), 60), node.output[-3000:]
        status = wait_status(client, ns, ": camera (default)", lambda s: s.get("input_status") == "ok", 10)
        assert status["input_reliability"] == "reliable" and status["level"] == "0", status
