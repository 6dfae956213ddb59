"""instance_segmentation_node and perception_node over real DDS: published instance and
panoptic maps equal the offline core for the same frame and weights."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig, node_defaults, section
from seg_perception.io.image import decode_image
from seg_perception.pipeline.factory import instance_from_config
from seg_perception.pipeline.panoptic import fuse_panoptic
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.tools.harness import GraphClient, NodeProcess, find_message

from .helpers import (
    UNTRAINED_INSTANCE,
    decode_mono16,
    latest_diagnostics,
    make_image,
    publish_until,
    road_scene,
    stamped,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def perception(small_semantic_params: dict):
    params = {
        f"semantic.{k}": v
        for k, v in small_semantic_params.items()
        if k in section(node_defaults("perception"), "semantic")
    }
    params.update({f"instance.{k}": v for k, v in UNTRAINED_INSTANCE.items()})
    params["diagnostics_period"] = 0.5
    ns = "/perc"
    node = NodeProcess("seg_perception.ros.perception_node", ns, params)
    client = GraphClient("perception_client")
    for topic in ("semantic/class_map", "instance/instance_map", "panoptic/panoptic_map"):
        client.subscribe(Image, f"{ns}/{topic}")
    client.subscribe(DiagnosticArray, "/diagnostics")
    pub = client.publisher(Image, f"{ns}/image")
    assert client.wait_for(lambda: pub.get_subscription_count() > 0, 90), node.output
    defaults = node_defaults("perception")
    sem_cfg = SemanticModelConfig.from_params(
        {
            **section(defaults, "semantic"),
            **{k: v for k, v in small_semantic_params.items() if k in section(defaults, "semantic")},
        }
    )
    inst_cfg = InstanceModelConfig.from_params({**section(defaults, "instance"), **UNTRAINED_INSTANCE})
    cores = SemanticSegmenter.from_config(sem_cfg), instance_from_config(inst_cfg)
    yield client, pub, node, ns, cores
    client.close()
    assert node.stop() == 0, node.output


@pytest.mark.parametrize(("width", "height"), [(512, 256), (333, 250)])
def test_perception_node_maps_equal_the_offline_cores(perception, width: int, height: int) -> None:
    client, pub, node, ns, (semantic, instance) = perception
    msg = stamped(road_scene(width, height), client, "front")
    out = publish_until(client, pub, msg, f"{ns}/panoptic/panoptic_map", timeout=90)
    assert out is not None, node.output[-3000:]
    # Three topics, three DDS writers: the panoptic map can arrive before the other two.
    assert client.wait_for(
        lambda: all(
            find_message(client.messages(f"{ns}/{topic}"), msg.header.stamp) is not None
            for topic in ("instance/instance_map", "semantic/class_map")
        ),
        10,
    )
    inst_msg = find_message(client.messages(f"{ns}/instance/instance_map"), msg.header.stamp)
    sem_msg = find_message(client.messages(f"{ns}/semantic/class_map"), msg.header.stamp)
    for m in (out, inst_msg, sem_msg):
        assert m.header == msg.header and (m.height, m.width) == (height, width)
    image = decode_image(msg)
    sem = semantic.segment([image])[0]
    inst = instance.segment([image])[0]
    assert np.array_equal(decode_mono16(inst_msg), inst.instance_map)
    assert np.array_equal(decode_mono16(out), fuse_panoptic(sem.class_map, inst, semantic.labels))
    # Decoding the published instance map gives back every instance and its class.
    values = np.unique(decode_mono16(inst_msg))
    values = values[values > 0]
    assert len(values) == len(inst.instances) > 0
    assert sorted(int(v) // 1000 for v in values) == sorted(r.label_id for r in inst.instances)
    assert all(r.label_id in {24, 25, 26, 27, 28, 31, 32, 33} for r in inst.instances)


def test_perception_node_renders_no_overlay_without_subscribers(perception) -> None:
    client, pub, _, ns, _ = perception
    msg = stamped(road_scene(320, 160, seed=5), client, "front")
    assert publish_until(client, pub, msg, f"{ns}/panoptic/panoptic_map", timeout=90) is not None
    assert client.wait_for(lambda: int(latest_diagnostics(client, ns).get("frames_processed", 0)) > 0, 5)
    diag = latest_diagnostics(client, ns)
    assert diag["overlays_rendered"] == "0"
    assert (diag["model"], diag["instance_model"]) == (
        "deeplabv3_mobilenet_v3_large",
        "maskrcnn_mobilenet_v3_large_fpn",
    )


def test_instance_node_publishes_instance_map_and_survives_bad_input(small_semantic_params: dict) -> None:
    ns = "/inst"
    node = NodeProcess(
        "seg_perception.ros.instance_node", ns, {**UNTRAINED_INSTANCE, "compressed_topic": "image/compressed"}
    )
    client = GraphClient("instance_client")
    try:
        client.subscribe(Image, f"{ns}/instance/instance_map")
        client.subscribe(Image, f"{ns}/instance/overlay")
        pub = client.publisher(Image, f"{ns}/image")
        cpub = client.publisher(CompressedImage, f"{ns}/image/compressed")
        assert client.wait_for(lambda: pub.get_subscription_count() > 0, 90), node.output
        bad = stamped(CompressedImage(format="jpeg", data=b"garbage"), client, "bad")
        cpub.publish(bad)
        time.sleep(0.5)  # one at a time: newest-frame-wins would merge a burst
        short = stamped(make_image("rgb8", 64, 48), client, "short")
        short.data = bytes(short.data)[:100]
        pub.publish(short)
        time.sleep(0.5)
        msg = stamped(road_scene(400, 200, seed=2), client, "front")
        out = publish_until(client, pub, msg, f"{ns}/instance/instance_map", timeout=90)
        assert out is not None, node.output[-3000:]
        cfg = InstanceModelConfig.from_params({**node_defaults("instance"), **UNTRAINED_INSTANCE})
        expected = instance_from_config(cfg).segment([decode_image(msg)])[0]
        assert np.array_equal(decode_mono16(out), expected.instance_map)
        assert client.wait_for(lambda: find_message(client.messages(f"{ns}/instance/overlay"), msg.header.stamp), 30)
        overlay = find_message(client.messages(f"{ns}/instance/overlay"), msg.header.stamp)
        assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", 200, 400)
        for m in (bad, short):
            assert find_message(client.messages(f"{ns}/instance/instance_map"), m.header.stamp) is None
        assert client.wait_for(lambda: "dropping bad frame" in node.output, 5), node.output
    finally:
        client.close()
        assert node.stop() == 0, node.output


def test_perception_node_serves_two_cameras_in_one_batch_and_draws_the_panoptic_overlay(
    small_semantic_params: dict,
) -> None:
    """cameras: [left, right] of different sizes; both frames wait for each other (batch_timeout_ms)
    and go through both models as one batch; every output lands under its own camera with its
    own header and equals the combined core on that frame alone."""
    from seg_perception.pipeline.perception import PerceptionCore

    params = {
        f"semantic.{k}": v
        for k, v in small_semantic_params.items()
        if k in section(node_defaults("perception"), "semantic")
    }
    params.update({f"instance.{k}": v for k, v in UNTRAINED_INSTANCE.items()})
    params.update(cameras="[left, right]", batch_timeout_ms=2000, diagnostics_period=0.5)
    ns = "/stereo"
    node = NodeProcess("seg_perception.ros.perception_node", ns, params)
    client = GraphClient("stereo_client")
    try:
        for cam in ("left", "right"):
            for topic in ("semantic/class_map", "instance/instance_map", "panoptic/panoptic_map", "panoptic/overlay"):
                client.subscribe(Image, f"{ns}/{cam}/{topic}")
        client.subscribe(DiagnosticArray, "/diagnostics")
        pubs = {cam: client.publisher(Image, f"{ns}/{cam}/image") for cam in ("left", "right")}
        assert client.wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 90), node.output
        msgs = {
            "left": stamped(road_scene(480, 240, seed=2), client, "left_optical"),
            "right": stamped(road_scene(320, 200, seed=3), client, "right_optical"),
        }

        def both_back() -> bool:
            return all(
                find_message(client.messages(f"{ns}/{cam}/panoptic/overlay"), m.header.stamp) for cam, m in msgs.items()
            )

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not both_back():
            for cam, m in msgs.items():  # best-effort input: re-send until both came back
                pubs[cam].publish(m)
            client.wait_for(both_back, 3.0)
        core = PerceptionCore.from_params({**node_defaults("perception"), **params})
        for cam, msg in msgs.items():
            got = {
                t: find_message(client.messages(f"{ns}/{cam}/{t}"), msg.header.stamp)
                for t in ("semantic/class_map", "instance/instance_map", "panoptic/panoptic_map", "panoptic/overlay")
            }
            assert all(m is not None for m in got.values()), (cam, node.output[-3000:])
            for m in got.values():
                assert m.header == msg.header and (m.height, m.width) == (msg.height, msg.width)
            expected = core.run([decode_image(msg)])[0]
            class_map = np.frombuffer(bytes(got["semantic/class_map"].data), np.uint8).reshape(msg.height, msg.width)
            assert np.array_equal(class_map, expected.semantic.class_map)
            assert np.array_equal(decode_mono16(got["instance/instance_map"]), expected.instance.instance_map)
            assert np.array_equal(decode_mono16(got["panoptic/panoptic_map"]), expected.panoptic)
            assert got["panoptic/overlay"].encoding == "rgb8"
        diag = latest_diagnostics(client, ns)
        assert int(diag["largest_batch"]) == 2, diag
    finally:
        client.close()
        assert node.stop() == 0, node.output
