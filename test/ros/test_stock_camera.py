"""Behind a stock camera: a plain rclpy publisher in its own process, default settings, no DDS
profile of ours (seg_perception/ros/tools/stock_camera.py), feeding the semantic node on its
shipped defaults over real DDS; and a node that cannot get frames says why on /diagnostics.

"Frames the model has time for" = the camera's seconds / the node's own processing time per
frame in the same run (``processing_p50_ms`` on /diagnostics: decode, models, outputs, under
the run's load). With newest-frame-wins the worker always has a frame waiting when frames
arrive, so it publishes about that many; lost frames are what makes a node fall short.
"""

from __future__ import annotations

import pytest

from seg_perception.ros.tools.camera_bench import CameraCase, run_camera_case

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _has_time_for(row: dict) -> float:
    during = row["node_diagnostics_during"]["node"]
    processing_s = float(during["processing_p50_ms"]) / 1000.0
    return min(row["sent"], row["seconds"] / processing_s)


@pytest.mark.parametrize(
    ("camera", "width", "height", "rate", "subscribed"),
    [
        ("default", 1920, 1080, 10.0, "reliable"),
        ("sensor_data", 1920, 1080, 10.0, "best_effort"),
        ("default", 3840, 2160, 5.0, "reliable"),
    ],
    ids=["1080p-default-qos", "1080p-best-effort", "2160p-default-qos"],
)
def test_node_serves_a_stock_camera_at_the_models_rate(camera, width, height, rate, subscribed) -> None:
    row = run_camera_case(CameraCase("ours", camera, width, height, rate, seconds=20.0), namespace="/stock")
    during = row["node_diagnostics_during"]
    end = row["node_diagnostics"]
    summary = {k: row[k] for k in ("sent", "outputs", "latency")} | {"during": during, "end": end}
    # The subscription followed the camera's QoS, and the node saw nothing wrong with its input.
    assert during["camera"]["input_reliability"] == subscribed, summary
    assert during["camera"]["publishers"] == "1", summary
    assert during["camera"]["level"] == "0" and during["node"]["level"] == "0", summary
    # Frames are not lost on the way in, ...
    received = int(end["node"]["frames_received"])
    assert received >= 0.95 * row["sent"], summary
    # ... so the node publishes class maps for (nearly) every frame its model has time for,
    has_time_for = _has_time_for(row)
    assert row["outputs"] >= 0.8 * has_time_for, (has_time_for, summary)
    # ... skips the rest, counted (newest-frame-wins: received = processed + dropped, ±1 in flight),
    processed, dropped = int(end["node"]["frames_processed"]), int(end["node"]["frames_dropped"])
    assert abs(received - processed - dropped) <= 1, summary
    # ... and never queues: latency stays within a few processing times.
    processing_ms = float(during["node"]["processing_p50_ms"])
    assert row["latency"]["p99_ms"] < 3 * processing_ms + 2000.0 / rate, summary
