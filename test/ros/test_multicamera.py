"""One node, several cameras: newest frame per camera, one batch per cycle, outputs under each
camera with that frame's own header, equal to the offline core on that frame alone, and a
slow camera never starved by a fast one; a 16-bit camera among them spoils no batch."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.config.records import SemanticModelConfig
from seg_perception.io.image import decode_image
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.frame_buffer import LatestFrameBuffer
from seg_perception.ros.tools.harness import GraphClient, NodeProcess

from .helpers import camera_diagnostics, latest_diagnostics, make_image, publish_until, stamped

MODULE = "seg_perception.ros.semantic_node"
NS = "/multi"
# camera -> (encoding, width, height, period in ticks of TICK_S): 40 Hz, 5 Hz, 1 Hz
CAMERAS = {
    "front": ("rgb8", 640, 480, 1),
    "front_left": ("bgr8", 320, 240, 8),
    "rear": ("mono16", 800, 600, 40),  # an IR camera: 16-bit frames in the others' batches
}
TICK_S = 0.025
LOAD_S = 10.0
VARIANTS = 3  # distinct images per camera, so a mix-up between frames would show


# -- the buffer on its own (no ROS) ------------------------------------------------------------
def test_frame_buffer_with_a_batch_limit_serves_the_longest_waiting_camera_first() -> None:
    buf = LatestFrameBuffer()
    buf.put("front", "f0")
    buf.put("rear", "r0")
    assert buf.take(0, max_batch=1) == {"front": "f0"}
    buf.put("front", "f1")  # front is faster, but rear has waited longer
    assert buf.take(0, max_batch=1) == {"rear": "r0"}
    assert buf.take(0, max_batch=1) == {"front": "f1"}
    assert buf.take(0.01, max_batch=1) == {}


def test_frame_buffer_waits_for_stragglers_only_within_the_batch_timeout() -> None:
    buf = LatestFrameBuffer()
    buf.put("front", "f0")
    later = threading.Timer(0.05, buf.put, args=("rear", "r0"))
    later.start()
    assert buf.take(1.0, gather_s=2.0, expected=["front", "rear"]) == {"front": "f0", "rear": "r0"}
    later.join()
    buf.put("front", "f1")
    start = time.monotonic()
    assert buf.take(1.0, gather_s=0.2, expected=["front", "side"]) == {"front": "f1"}  # side never comes
    assert 0.15 < time.monotonic() - start < 1.5
    buf.put("front", "f2")
    assert buf.take(1.0, expected=["front", "rear"]) == {"front": "f2"}  # no batch timeout: no wait


# -- the node over DDS ---------------------------------------------------------------------------
@pytest.mark.ros
@pytest.mark.slow
def test_three_cameras_batched_each_output_its_own_frame_and_the_slow_camera_never_starves(
    small_semantic_params: dict,
) -> None:
    params = dict(small_semantic_params, cameras=list(CAMERAS), batch_timeout_ms=10, diagnostics_period=0.5)
    node = NodeProcess(MODULE, NS, params)
    client = GraphClient("multicamera_client")
    try:
        client.subscribe(DiagnosticArray, "/diagnostics")
        pubs, frames = {}, {}
        for cam, (encoding, width, height, _) in CAMERAS.items():
            client.subscribe(Image, f"{NS}/{cam}/semantic/class_map", depth=1000)
            pubs[cam] = client.publisher(Image, f"{NS}/{cam}/image")
            frames[cam] = [make_image(encoding, width, height, seed=100 * i + width) for i in range(VARIANTS)]
        assert client.wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 60), node.output
        for cam in CAMERAS:  # warm-up, and proof that each camera is served on its own
            warm = stamped(frames[cam][0], client, "warm")
            assert publish_until(client, pubs[cam], warm, f"{NS}/{cam}/semantic/class_map") is not None, node.output
        sent: dict[str, dict[tuple[int, int], int]] = {cam: {} for cam in CAMERAS}
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < LOAD_S:
            for cam, (_, _, _, period) in CAMERAS.items():
                if tick % period == 0:
                    variant = (tick // period) % VARIANTS
                    msg = stamped(frames[cam][variant], client, cam)
                    pubs[cam].publish(msg)
                    sent[cam][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = variant
            tick += 1
            time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))

        def settled() -> bool:
            diag = {cam: camera_diagnostics(client, NS, cam) for cam in CAMERAS}
            return all(
                int(d.get("frames_received", -1)) == int(d.get("frames_processed", 0)) + int(d.get("frames_dropped", 0))
                for d in diag.values()
            )

        assert client.wait_for(settled, 20), {cam: camera_diagnostics(client, NS, cam) for cam in CAMERAS}
        time.sleep(1.0)  # one more diagnostics period, so the counters below are final

        offline = SemanticSegmenter.from_config(SemanticModelConfig.from_params(small_semantic_params))
        for cam, (_, width, height, _) in CAMERAS.items():
            expected = [offline.segment([decode_image(f)])[0].class_map for f in frames[cam]]
            assert all(len(np.unique(e)) > 1 for e in expected)  # meaningful comparisons
            outputs = [m for m in client.messages(f"{NS}/{cam}/semantic/class_map") if m.header.frame_id != "warm"]
            assert outputs, f"no output for {cam}"
            for out in outputs:
                key = (out.header.stamp.sec, out.header.stamp.nanosec)
                # Its own header: a stamp this camera sent, with this camera's frame_id.
                assert out.header.frame_id == cam and key in sent[cam], (cam, out.header)
                assert (out.height, out.width, out.encoding) == (height, width, "mono8")
                published = np.frombuffer(bytes(out.data), np.uint8).reshape(out.height, out.step)[:, :width]
                assert np.array_equal(published, expected[sent[cam][key]]), (cam, key)
            assert len({(m.header.stamp.sec, m.header.stamp.nanosec) for m in outputs}) == len(outputs)

            diag = camera_diagnostics(client, NS, cam)
            warm_frames = sum(
                1 for m in client.messages(f"{NS}/{cam}/semantic/class_map") if m.header.frame_id == "warm"
            )
            # Counters agree with what arrived (outputs are reliable: every processed frame).
            assert int(diag["frames_processed"]) == len(outputs) + warm_frames, (cam, diag, len(outputs))
            assert int(diag["bad_input"]) == 0 and diag["input_subscribed"] == "True"
            assert float(diag["latency_p95_ms"]) > 0

        rear = camera_diagnostics(client, NS, "rear")
        rear_outputs = [m for m in client.messages(f"{NS}/rear/semantic/class_map") if m.header.frame_id == "rear"]
        # Never starved: every frame the slow camera sent was processed, none overwritten...
        assert len(rear_outputs) == len(sent["rear"]) >= LOAD_S - 1, (len(rear_outputs), len(sent["rear"]), rear)
        assert int(rear["frames_dropped"]) == 0, rear
        # ...while the fast camera overloaded the node (its stale frames were dropped).
        front = camera_diagnostics(client, NS, "front")
        assert int(front["frames_dropped"]) > 0, front
        summary = latest_diagnostics(client, NS)
        # Batched: frames of several cameras went through the model together.
        assert int(summary["largest_batch"]) >= 2, summary
        assert int(summary["batches"]) < int(summary["frames_processed"]), summary
        assert summary["cameras"] == "3" and summary["inputs_subscribed"] == "3"
    finally:
        client.close()
        assert node.stop() == 0, node.output
