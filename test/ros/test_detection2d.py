"""instance/detections for real: vision_msgs is built from its interface definitions with the PyPI
message generators (build_vision_msgs.py), the instance and perception nodes publish
Detection2DArray over DDS, and a subscriber in another process receives it. Each detection
must match the instance map the node published for the same frame: ``id`` one of its values,
``class_id`` that value's class, the score the offline core gives it, the box of its pixels."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sensor_msgs.msg import Image

from seg_perception.config.records import InstanceModelConfig, node_defaults, section
from seg_perception.io.image import decode_image
from seg_perception.pipeline.detection_boxes import pixel_box
from seg_perception.pipeline.factory import instance_from_config
from seg_perception.pipeline.instance import InstanceRecord
from seg_perception.resources import import_root
from seg_perception.ros.tools.harness import GraphClient, NodeProcess, find_message, node_command, node_env

from .build_vision_msgs import BuildError, Built, build_vision_msgs, runtime_env
from .helpers import UNTRAINED_INSTANCE, decode_mono16, road_scene, stamped


def record_detections(topic: str, path: str) -> None:
    """The listener process: every Detection2DArray on ``topic`` as one JSON line in ``path``.
    It runs where the built vision_msgs is importable (see :func:`runtime_env`)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    def header(h: Any) -> list[Any]:
        return [h.stamp.sec, h.stamp.nanosec, h.frame_id]

    rclpy.init()
    node = rclpy.create_node("detections_listener")
    with open(path, "a") as out:

        def store(msg: Any) -> None:
            dets = [
                {
                    "header": header(d.header),
                    "id": d.id,
                    "results": [[r.hypothesis.class_id, r.hypothesis.score] for r in d.results],
                    "center": [d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.theta],
                    "size": [d.bbox.size_x, d.bbox.size_y],
                }
                for d in msg.detections
            ]
            out.write(json.dumps({"header": header(msg.header), "detections": dets}) + "\n")
            out.flush()

        node.create_subscription(
            Detection2DArray, topic, store, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        )
        with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):  # SIGINT from NodeProcess.stop
            rclpy.spin(node)
    node.destroy_node()
    rclpy.try_shutdown()


def received(path: Path, stamp: Any) -> dict[str, Any] | None:
    """The first recorded Detection2DArray whose header carries ``stamp``."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        msg = json.loads(line)
        if msg["header"][:2] == [stamp.sec, stamp.nanosec]:
            return dict(msg)
    return None


@pytest.fixture(scope="session")
def vision_msgs() -> Built:
    """Built once per machine and reused while its inputs are unchanged (build/vision_msgs)."""
    try:
        built = build_vision_msgs()
    except BuildError as err:  # a failure, not a skip: this environment is meant to build it
        pytest.fail(str(err))
    print(f"vision_msgs: {built.summary}")
    return built


def node_params(kind: str, small_semantic_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "instance":
        return "seg_perception.ros.instance_node", dict(UNTRAINED_INSTANCE)
    semantic = section(node_defaults("perception"), "semantic")
    params = {f"semantic.{k}": v for k, v in small_semantic_params.items() if k in semantic}
    params.update({f"instance.{k}": v for k, v in UNTRAINED_INSTANCE.items()})
    return "seg_perception.ros.perception_node", params


def check_against_map(
    got: dict[str, Any], frame: Image, instance_map: np.ndarray, instances: list[InstanceRecord]
) -> None:
    """``got`` (a recorded Detection2DArray) against the published instance map of ``frame``
    and the offline core's records of the same frame (for the scores, which no map holds)."""
    header = [frame.header.stamp.sec, frame.header.stamp.nanosec, frame.header.frame_id]
    assert got["header"] == header
    values = [int(v) for v in np.unique(instance_map) if v > 0]
    assert len(values) > 0, "no instance in the map: the comparison would be empty"
    assert sorted(int(d["id"]) for d in got["detections"]) == values
    names = {r.value: (r.label_id, r.name) for r in instances}
    scores = {r.value: r.score for r in instances}
    for det in got["detections"]:
        value = int(det["id"])
        assert det["header"] == header, value
        label_id, name = names[value]
        assert label_id == value // 1000
        assert det["results"] == [[name, pytest.approx(scores[value], abs=1e-6)]], value
        ys, xs = np.nonzero(instance_map == value)
        centre = [(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, 0.0]
        assert det["center"] == pytest.approx(centre, abs=1e-9), value
        assert det["size"] == [xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], value


@pytest.mark.parametrize(("kind", "width", "height", "seed"), [("instance", 400, 200, 2), ("perception", 333, 250, 0)])
@pytest.mark.ros
@pytest.mark.slow
def test_node_publishes_detection2darray_that_matches_its_instance_map(
    vision_msgs: Built,
    small_semantic_params: dict[str, Any],
    tmp_path: Path,
    kind: str,
    width: int,
    height: int,
    seed: int,
) -> None:
    module, params = node_params(kind, small_semantic_params)
    ns = f"/det_{kind}"
    topic = f"{ns}/instance/detections"
    env = runtime_env(vision_msgs, node_env())
    node = NodeProcess.from_command(node_command(module, ns, params), env)
    log = tmp_path / "detections.jsonl"
    listener_cmd = [sys.executable, "-m", "test.ros.test_detection2d", topic, str(log)]
    listener = NodeProcess.from_command(listener_cmd, env, cwd=import_root())
    client = GraphClient(f"det_{kind}_client")
    try:
        client.subscribe(Image, f"{ns}/instance/instance_map")
        pub = client.publisher(Image, f"{ns}/image")
        assert client.wait_for(lambda: pub.get_subscription_count() > 0, 90), node.output

        def advertised() -> bool:  # the node could import the built vision_msgs
            return "vision_msgs/msg/Detection2DArray" in dict(client.node.get_topic_names_and_types()).get(topic, [])

        assert client.wait_for(advertised, 30), node.output[-3000:]
        frame = stamped(road_scene(width, height, seed), client, "front_optical")

        def both() -> bool:
            maps = client.messages(f"{ns}/instance/instance_map")
            return find_message(maps, frame.header.stamp) is not None and received(log, frame.header.stamp) is not None

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not both():
            pub.publish(frame)  # again until both outputs came back (discovery may still be under way)
            client.wait_for(both, 3.0)
        got = received(log, frame.header.stamp)
        map_msg = find_message(client.messages(f"{ns}/instance/instance_map"), frame.header.stamp)
        assert got is not None and map_msg is not None, (node.output[-3000:], listener.output[-3000:])
        instance_map = decode_mono16(map_msg)
        cfg = InstanceModelConfig.from_params({**node_defaults("instance"), **UNTRAINED_INSTANCE})
        offline = instance_from_config(cfg).segment([decode_image(frame)])[0]
        assert np.array_equal(instance_map, offline.instance_map)  # so its scores are the node's
        check_against_map(got, frame, instance_map, offline.instances)
    finally:
        client.close()
        listener.stop()
        assert node.stop() == 0, node.output


def record(value: int, bbox: tuple[float, float, float, float], area: int) -> InstanceRecord:
    return InstanceRecord(value, value // 1000, 13, "car", 0.9, bbox, area)


def test_pixel_box_is_the_box_of_the_instance_pixels_inside_or_beyond_the_detector_box() -> None:
    instance_map = np.zeros((40, 60), np.uint16)
    instance_map[10:15, 20:31] = 26001  # inside its detector box
    instance_map[0, 59] = 26002  # one pixel far from its detector box: found by the full scan
    instance_map[30:35, 5:8] = 26002
    assert pixel_box(instance_map, record(26001, (19.5, 9.0, 31.0, 15.0), 55)) == (20, 10, 30, 14)
    assert pixel_box(instance_map, record(26002, (5.0, 30.0, 8.0, 35.0), 16)) == (5, 0, 59, 34)


if __name__ == "__main__":
    record_detections(sys.argv[1], sys.argv[2])
