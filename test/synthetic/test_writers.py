"""The render-once writer: the Cityscapes layout and a drive bag from one pass over the frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_cityscapes, write_cityscapes_and_drive_bag, write_drive_bag


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with Reader(bag) as reader:
        return [(conn.topic, stamp, bytes(raw)) for conn, stamp, raw in reader.messages()]


@pytest.mark.parametrize(("storage", "compressed"), [("sqlite3", ""), ("mcap", "png")])
def test_one_pass_writes_what_the_two_writers_write(tmp_path: Path, storage: str, compressed: str) -> None:
    frames = list(generate_drive(6, 3, 128, 64, fps=20.0))
    paths = write_cityscapes(tmp_path / "two" / "cs", frames, split="train")
    write_drive_bag(tmp_path / "two" / "bag", frames, fps=20.0, storage=storage, compressed=compressed)
    once, bag = write_cityscapes_and_drive_bag(
        tmp_path / "one" / "cs",
        tmp_path / "one" / "bag",
        iter(frames),  # a single pass: the frames are rendered once
        split="train",
        fps=20.0,
        storage=storage,
        compressed=compressed,
    )
    assert bag == tmp_path / "one" / "bag"
    assert [p.relative_to(tmp_path / "one") for p in once] == [p.relative_to(tmp_path / "two") for p in paths]
    assert _files(tmp_path / "one" / "cs") == _files(tmp_path / "two" / "cs")
    assert _messages(tmp_path / "one" / "bag") == _messages(tmp_path / "two" / "bag")
    assert (tmp_path / "one" / "bag" / "metadata.yaml").read_text() == (
        tmp_path / "two" / "bag" / "metadata.yaml"
    ).read_text()
