"""Live replay: bag_player publishes a bag into the graph with its recorded timing and /clock;
bag_recorder writes topics of the graph to a bag that rosbags reads."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from seg_perception.io import bags
from seg_perception.ros.tools.harness import GraphClient, NodeProcess
from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_drive_bag

pytestmark = pytest.mark.ros

FRAMES, FPS = 20, 10.0
# Arrival times of the played frames, relative to the first, may deviate from the recorded
# spacing / rate by at most this much (sleep granularity, DDS and a loaded 2-core CI machine).
TOLERANCE_S = 0.06


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "drive"
    return write_drive_bag(path, generate_drive(11, FRAMES, 160, 96, fps=FPS), fps=FPS)


def wait_exit(node: NodeProcess, timeout: float) -> int:
    node.proc.wait(timeout)
    node.stop()
    return node.proc.returncode


@pytest.mark.parametrize("rate", [1.0, 2.0])
def test_player_keeps_the_recorded_timing_and_publishes_clock(drive: Path, tmp_path: Path, rate: float) -> None:
    client = GraphClient("timing_probe")
    recorder = NodeProcess(
        "seg_perception.ros.bag_recorder", "/", {"bag": str(tmp_path / "recorded"), "topics": "[/camera/image_raw]"}
    )
    player = None
    try:
        client.subscribe(Image, "/camera/image_raw", depth=FRAMES)
        client.subscribe(Clock, "/clock", reliability="best_effort", depth=1000)
        player = NodeProcess(
            "seg_perception.ros.bag_player",
            "/",
            {
                "bag": str(drive),
                "rate": rate,
                "topics": "[/camera/image_raw]",
                "wait_for_subscribers": "[/camera/image_raw]",
                "min_subscribers": 2,
                "wait_timeout": 60.0,
            },
        )
        assert wait_exit(player, 120) == 0, player.output
        assert client.wait_for(lambda: len(client.messages("/camera/image_raw")) == FRAMES, 10)
    finally:
        if player is not None:
            player.stop()
        client.close()
        assert recorder.stop() == 0, recorder.output

    timed = client.timed("/camera/image_raw")
    stamps = np.array([bags.stamp_ns(m.header) for _, m in timed], np.int64)
    arrivals = np.array([t for t, _ in timed])
    expected = (stamps - stamps[0]) / 1e9 / rate
    deviation = np.abs((arrivals - arrivals[0]) - expected)
    assert deviation.max() < TOLERANCE_S, f"arrival deviation {deviation.round(3)}"

    clock = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for m in client.messages("/clock")]
    assert len(clock) > 10
    assert all(b >= a for a, b in itertools.pairwise(clock)), "the clock ran backwards"
    assert stamps[0] - 1e8 <= clock[0] and clock[-1] <= stamps[-1] + 1e8  # the bag's time, not the wall's

    with Reader(tmp_path / "recorded") as reader:
        recorded = [bags.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert [bags.stamp_ns(m.header) for m in recorded] == stamps.tolist()
    with Reader(drive) as reader:
        original = next(
            bags.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/camera/image_raw"
        )
    assert np.array_equal(recorded[0].data, original.data)


def test_player_start_offset_and_loop(drive: Path) -> None:
    client = GraphClient("loop_probe")
    player = None
    try:
        client.subscribe(Image, "/camera/image_raw", depth=100)
        player = NodeProcess(
            "seg_perception.ros.bag_player",
            "/",
            {
                "bag": str(drive),
                "rate": 4.0,
                "loop": True,
                "start_offset": 1.0,
                "topics": "[/camera/image_raw]",
                "wait_for_subscribers": "[/camera/image_raw]",
            },
        )
        # Offset 1.0 s skips 10 of 20 frames; looping replays the remaining 10 again.
        assert client.wait_for(lambda: len(client.messages("/camera/image_raw")) >= 25, 60), player.output
    finally:
        if player is not None:
            assert player.stop() == 0, player.output
        client.close()
    stamps = [bags.stamp_ns(m.header) for m in client.messages("/camera/image_raw")]
    first = stamps[0]
    assert stamps[:10] == [first + i * 100_000_000 for i in range(10)]
    assert stamps[10:20] == stamps[:10]  # second loop


def test_player_refuses_a_missing_bag_with_one_line(tmp_path: Path) -> None:
    player = NodeProcess("seg_perception.ros.bag_player", "/", {"bag": str(tmp_path / "nope")})
    assert player.proc.wait(60) == 2
    player.stop()
    assert "error: bag" in player.output and "does not exist" in player.output
