"""`seg-perception replay` on bags as the field leaves them and as other tools write them:
outputs for every frame of every file, in the input's storage (MCAP where unknown), and one
line naming `ros2 bag reindex` where a folder cannot be read. The split MCAP and refusal cases
run the installed console script as a subprocess; the others run the same command line
in-process (``cli.main``: same parser, same error boundary) to keep the suite fast."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from seg_perception.apps.cli import main
from seg_perception.io import bags
from test.io.foreign_bags import (
    COMPRESSED_TOPIC,
    PERIOD_NS,
    START_NS,
    TOPIC,
    rosbags_bag,
    split_without_metadata,
    write_split_mcap,
)

# The shipped semantic model on the CPU at a small input size: seconds per replay.
FAST = ["--models", "semantic", "--no-progress"] + [
    arg
    for kv in ("semantic.backend=torch", "semantic.device=cpu", "semantic.input_height=64", "semantic.input_width=128")
    for arg in ("-p", kv)
]


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("seg-perception")
    return [str(script)] if script.exists() else [sys.executable, "-m", "seg_perception.apps.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script(), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture
def keep_sigterm() -> Iterator[None]:
    # cmd_replay makes SIGTERM interrupt the replay; in-process runs must not leave that behind.
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def output_storage(out: Path) -> str:
    """storage_identifier of an output bag's metadata.yaml, checked against its files."""
    meta = YAML(typ="safe").load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    suffixes = {f.suffix for f in out.iterdir() if f.name != "metadata.yaml"}
    assert suffixes == {".mcap" if meta["storage_identifier"] == "mcap" else ".db3"}
    return str(meta["storage_identifier"])


def class_map_times(out: Path, namespace: str = "/front") -> list[int]:
    """Log times of the output class maps, read with rosbags; each map is a mono8 frame of the
    input's size."""
    times = []
    with Reader(out) as reader:
        conns = [c for c in reader.connections if c.topic == f"{namespace}/semantic/class_map"]
        for conn, logtime, raw in reader.messages(conns):
            msg = bags.deserialize(raw, conn.msgtype)
            assert (msg.encoding, msg.height, msg.width) == ("mono8", 48, 64)
            assert np.asarray(msg.data).max() < 19
            times.append(logtime)
    return times


def frame_times(n: int, first: int = 0) -> list[int]:
    return [START_NS + k * PERIOD_NS for k in range(first, first + n)]


def test_replay_of_a_split_mcap_recording_without_metadata_covers_every_file(tmp_path: Path) -> None:
    # One recording, two cameras (Image and CompressedImage), 3 split files, no metadata.yaml.
    files = write_split_mcap(tmp_path / "rec", 6, files=3, kinds=("image", "compressed"))
    assert len(files) == 3 and not (tmp_path / "rec" / "metadata.yaml").exists()
    out = tmp_path / "out"
    result = run_cli(
        "replay", str(tmp_path / "rec"), "--out", str(out), "--topic", TOPIC, "--topic", COMPRESSED_TOPIC, *FAST
    )
    assert result.returncode == 0, result.stderr
    assert output_storage(out) == "mcap"
    assert class_map_times(out, "/front") == frame_times(6)
    assert class_map_times(out, "/rear") == frame_times(6)
    assert json.loads((tmp_path / "out.report.json").read_text())["frames"] == 12


@pytest.mark.usefixtures("keep_sigterm")
def test_replay_of_a_killed_recording_keeps_every_written_frame_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_split_mcap(tmp_path / "rec", 9, files=3, finish_last=False, chunk_size=1)
    assert main(["replay", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), *FAST]) == 0
    assert any("rec_2.mcap is not a finished MCAP file" in r.getMessage() for r in caplog.records)
    notes = json.loads((tmp_path / "out.report.json").read_text())["notes"]
    assert [n for n in notes if "rec_2.mcap" in n and "3 complete messages" in n]
    assert class_map_times(tmp_path / "out") == frame_times(9)
    assert output_storage(tmp_path / "out") == "mcap"


def test_replay_of_a_folder_with_nothing_to_read_is_one_line_naming_reindex(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    result = run_cli("replay", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), *FAST)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("seg-perception: error: bag folder ") and "`ros2 bag reindex " in result.stderr
    assert not (tmp_path / "out").exists()


def sqlite3_split(tmp_path: Path) -> Path:
    parts = [
        rosbags_bag(tmp_path / "a", 2, "sqlite3", name="rec_0"),
        rosbags_bag(tmp_path / "b", 2, "sqlite3", first=2, name="rec_1"),
    ]
    return split_without_metadata(tmp_path / "rec", parts)


def compressed(storage: str, mode: str, metadata: bool) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        bag = rosbags_bag(tmp_path / "rec", 4, storage, mode)
        if not metadata:
            (bag / "metadata.yaml").unlink()
        return bag

    return make


@pytest.mark.usefixtures("keep_sigterm")
@pytest.mark.parametrize(
    ("make", "extra", "storage"),
    [
        (sqlite3_split, [], "sqlite3"),
        (compressed("mcap", "file", metadata=True), [], "mcap"),
        (compressed("sqlite3", "file", metadata=False), [], "sqlite3"),
        (compressed("mcap", "message", metadata=False), [], "mcap"),
        (compressed("sqlite3", "message", metadata=True), [], "sqlite3"),
        (lambda p: write_split_mcap(p / "rec", 4, files=2)[0].parent, ["--storage", "sqlite3"], "sqlite3"),
    ],
    ids=[
        "sqlite3-split-no-metadata",
        "mcap-zstd-file",
        "sqlite3-zstd-file-no-metadata",
        "mcap-zstd-message-no-metadata",
        "sqlite3-zstd-message",
        "split-mcap-to-sqlite3-by-option",
    ],
)
def test_replay_output_storage_follows_the_input_unless_chosen(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    extra: list[str],
    storage: str,
) -> None:
    bag = make(tmp_path)
    code = main(["replay", str(bag), "--out", str(tmp_path / "out"), *extra, *FAST])
    assert code == 0, capsys.readouterr().err
    assert output_storage(tmp_path / "out") == storage
    assert class_map_times(tmp_path / "out") == frame_times(4)
