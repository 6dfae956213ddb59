"""`seg-perception demo`, as `make demo` runs it: bag_player -> perception_node -> bag_recorder
over DDS, then the video, PNGs and metrics from the recorded bag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_replays_a_drive_through_the_graph_and_writes_video_pngs_and_metrics(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # Small instance input keeps the CPU time of the test down; everything else is the shipped default.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seg_perception.apps.cli",
            "demo",
            "--out",
            str(out),
            "--frames",
            "4",
            "--rate",
            "0.1",
            "-p",
            "instance.input_height=256",
            "-p",
            "instance.input_width=512",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frames segmented" in proc.stdout

    video = cv2.VideoCapture(str(out / "overlays.mp4"))
    frames = []
    while (ok := video.read())[0]:
        frames.append(ok[1])
    assert frames and frames[0].shape == (720, 1280, 3)
    pngs = sorted(out.glob("frame_*.png"))
    assert pngs
    row = cv2.imread(str(pngs[0]))
    assert row.shape == (360, 2560, 3)
    # The semantic overlay (second panel) is not the camera (first panel): the model painted it.
    camera, semantic = row[:, :640].astype(int), row[:, 640:1280].astype(int)
    assert np.abs(camera - semantic).mean() > 10

    report = json.loads((out / "metrics.json").read_text())
    assert report["frames_played"] == 4 and 1 <= report["frames_with_outputs"] <= 4
    sem = report["metrics"]["semantic"]
    assert sem["pixel_accuracy"] > 0.7 and sem["mIoU"] > 0.15  # the shipped weights, far above chance
    assert "panoptic" in report["metrics"]
    # The node ran on the bag's clock (use_sim_time): its latency (publish - header stamp, ROS
    # time) is a fraction of a second, not the years between the bag's stamps and today.
    assert 0 < float(report["node_diagnostics"]["latency_p50_ms"]) < 5_000
    with Reader(out / "outputs_bag") as reader:
        topics = {c.topic for c in reader.connections}
    assert {"/camera/semantic/class_map", "/camera/instance/instance_map", "/camera/panoptic/panoptic_map"} <= topics
    assert "mean" in (out / "metrics.md").read_text()
