"""Bags as the field leaves them, read through open_bag: split MCAP recordings without
metadata.yaml (written with Foxglove's mcap-ros2-support), recordings cut off by a killed
recorder, rosbags-written sqlite3 and zstd-compressed bags, bare storage files, and the
one-line refusals where there is nothing to read."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard

from seg_perception.errors import BagError
from seg_perception.io import bags
from seg_perception.io.image import to_rgb
from test.io.foreign_bags import (
    PERIOD_NS,
    START_NS,
    cut_inside_chunk,
    frame_pixels,
    rosbags_bag,
    split_without_metadata,
    write_split_mcap,
)


def read_frames(path: Path) -> tuple[str, list[int], list[np.ndarray]]:
    """(storage, frame indices from the log times, decoded rgb frames) of the bag's camera."""
    reader = bags.open_bag(path)
    try:
        cameras = bags.camera_connections(reader)
        storage = bags.storage_of(reader)
        indices, frames = [], []
        for conn, logtime, raw in bags.read_messages(reader, cameras):
            indices.append((logtime - START_NS) // PERIOD_NS)
            frames.append(np.array(to_rgb(bags.decode_frame(raw, conn.msgtype)[1])))
        assert sum(c.msgcount for c in cameras) == len(indices)  # counts rebuilt = messages read
    finally:
        reader.close()
    return storage, indices, frames


def assert_frames(frames: list[np.ndarray], indices: list[int]) -> None:
    for frame, k in zip(frames, indices, strict=True):
        assert np.array_equal(frame, frame_pixels(k)), k


@pytest.mark.parametrize("kind", ["image", "compressed"])
def test_split_mcap_without_metadata_reads_every_frame_of_every_file_in_order(tmp_path: Path, kind: str) -> None:
    files = write_split_mcap(tmp_path / "rec", 7, kinds=(kind,))
    assert [f.name for f in (tmp_path / "rec").iterdir()].count("metadata.yaml") == 0 and len(files) == 3
    storage, indices, frames = read_frames(tmp_path / "rec")
    assert (storage, indices) == ("mcap", list(range(7)))
    assert_frames(frames, indices)
    reader = bags.open_bag(tmp_path / "rec")
    assert (reader.start_time, reader.end_time, reader.message_count) == (START_NS, START_NS + 6 * PERIOD_NS + 1, 7)
    reader.close()


def test_split_files_are_read_in_split_order_not_name_order(tmp_path: Path) -> None:
    write_split_mcap(tmp_path / "rec", 12, files=12)  # rec_10.mcap sorts before rec_2.mcap as text
    assert read_frames(tmp_path / "rec")[1] == list(range(12))


@pytest.mark.parametrize(("chunk_size", "readable"), [(1, 9), (1024 * 1024, 6)])
def test_killed_recorder_last_file_is_read_up_to_its_last_written_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, chunk_size: int, readable: int
) -> None:
    # A killed writer leaves no summary and no footer; with 1 MB chunks its open chunk (the
    # last file's three frames, schema and channel included) was never written at all.
    write_split_mcap(tmp_path / "rec", 9, finish_last=False, chunk_size=chunk_size)
    storage, indices, frames = read_frames(tmp_path / "rec")
    assert (storage, indices) == ("mcap", list(range(readable)))
    assert_frames(frames, indices)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rec_2.mcap is not a finished MCAP file" in warnings[0]


@pytest.mark.parametrize(("chunk_compression", "crcs"), [("zstd", True), ("none", False)])
def test_mcap_cut_inside_a_chunk_is_read_up_to_the_cut(tmp_path: Path, chunk_compression: str, crcs: bool) -> None:
    # Uncompressed without CRCs, nothing but the file's end tells that the chunk is incomplete.
    files = write_split_mcap(tmp_path / "rec", 9, chunk_size=1, chunk_compression=chunk_compression, crcs=crcs)
    cut_inside_chunk(files[-1], 1)  # the last file keeps its first frame, loses the rest
    reader = bags.open_bag(tmp_path / "rec")
    (line,) = reader.truncated_files()
    reader.close()
    assert "rec_2.mcap" in line and "1 complete messages" in line and "ends inside a record" in line
    _, indices, frames = read_frames(tmp_path / "rec")
    assert indices == list(range(7))
    assert_frames(frames, indices)


def test_killed_file_compressed_recording_reads_compressed_splits_and_the_open_raw_one(tmp_path: Path) -> None:
    # rosbag2 file compression compresses each split when it is closed; the split being written
    # when the recorder was killed stays a raw, unfinished .mcap.
    files = write_split_mcap(tmp_path / "rec", 6, finish_last=False, chunk_size=1)
    for f in files[:-1]:
        f.with_name(f.name + ".zstd").write_bytes(zstandard.ZstdCompressor().compress(f.read_bytes()))
        f.unlink()
    assert sorted(f.name for f in (tmp_path / "rec").iterdir()) == ["rec_0.mcap.zstd", "rec_1.mcap.zstd", "rec_2.mcap"]
    _, indices, frames = read_frames(tmp_path / "rec")
    assert indices == list(range(6))
    assert_frames(frames, indices)


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata", "no-metadata"])
@pytest.mark.parametrize("compression", ["file", "message"])
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_zstd_compressed_bags_are_read_with_or_without_metadata(
    tmp_path: Path, storage: str, compression: str, metadata: bool
) -> None:
    bag = rosbags_bag(tmp_path / "bag", 5, storage, compression)
    if compression == "file":
        assert [f.suffix for f in bag.iterdir() if f.name != "metadata.yaml"] == [".zstd"]
    if not metadata:
        (bag / "metadata.yaml").unlink()
    got_storage, indices, frames = read_frames(bag)
    assert (got_storage, indices) == (storage, list(range(5)))
    assert_frames(frames, indices)


def test_sqlite3_split_without_metadata_reads_every_file(tmp_path: Path) -> None:
    parts = [
        rosbags_bag(tmp_path / "a", 3, "sqlite3", name="rec_0"),
        rosbags_bag(tmp_path / "b", 4, "sqlite3", first=3, name="rec_1"),
    ]
    bag = split_without_metadata(tmp_path / "rec", parts)
    assert sorted(f.name for f in bag.iterdir()) == ["rec_0.db3", "rec_1.db3"]
    storage, indices, frames = read_frames(bag)
    assert (storage, indices) == ("sqlite3", list(range(7)))
    assert_frames(frames, indices)


@pytest.mark.parametrize(("storage", "compression"), [("mcap", ""), ("sqlite3", ""), ("mcap", "file")])
def test_bare_storage_files_are_read(tmp_path: Path, storage: str, compression: str) -> None:
    bag = rosbags_bag(tmp_path / "bag", 4, storage, compression)
    (file,) = (f for f in bag.iterdir() if f.name != "metadata.yaml")
    bare = shutil.move(str(file), tmp_path / file.name)
    assert read_frames(Path(bare))[:2] == (storage, list(range(4)))


def test_folder_without_storage_files_is_refused_naming_reindex(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.txt").write_text("x")
    with pytest.raises(BagError, match=r"no metadata\.yaml and no storage files .*`ros2 bag reindex ") as err:
        bags.open_bag(tmp_path / "rec")
    assert "\n" not in str(err.value)


def test_folder_mixing_storages_is_refused_naming_reindex(tmp_path: Path) -> None:
    parts = [
        rosbags_bag(tmp_path / "a", 2, "sqlite3", name="rec_0"),
        rosbags_bag(tmp_path / "b", 2, "mcap", name="rec_1"),
    ]
    bag = split_without_metadata(tmp_path / "rec", parts)
    with pytest.raises(BagError, match=r"mixes storages \['mcap', 'sqlite3'\].*ros2 bag reindex"):
        bags.open_bag(bag)


def test_storage_file_that_is_not_mcap_is_refused_in_one_line(tmp_path: Path) -> None:
    write_split_mcap(tmp_path / "rec", 4, files=2)
    (tmp_path / "rec" / "rec_1.mcap").write_bytes(b"not an mcap file at all")
    with pytest.raises(BagError, match=r"rec_1\.mcap is not an MCAP file") as err:
        bags.open_bag(tmp_path / "rec")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size", [0, 5])
def test_empty_last_split_file_holds_nothing(tmp_path: Path, size: int) -> None:
    # A recorder killed right after opening its next split leaves an empty or header-less file.
    files = write_split_mcap(tmp_path / "rec", 6, files=3)
    files[-1].write_bytes(files[-1].read_bytes()[:size])
    assert read_frames(tmp_path / "rec")[1] == list(range(4))


def test_damaged_sqlite3_file_is_refused_in_one_line(tmp_path: Path) -> None:
    bag = rosbags_bag(tmp_path / "bag", 2, "sqlite3")
    (bag / "metadata.yaml").unlink()
    (bag / "bag.db3").write_bytes((bag / "bag.db3").read_bytes()[:100])  # not even the first page
    with pytest.raises(BagError, match=r"cannot read bag\.db3 of bag ") as err:
        bags.open_bag(bag)
    assert "\n" not in str(err.value)


def test_unfinished_mcap_without_the_mcap_package_is_one_line_naming_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_split_mcap(tmp_path / "rec", 4, files=2, finish_last=False, chunk_size=1)
    monkeypatch.setitem(sys.modules, "seg_perception.io.mcap_partial", None)  # as if mcap were not installed
    with pytest.raises(BagError, match=r"rec_1\.mcap .*not a finished MCAP file.*pip install mcap==") as err:
        bags.open_bag(tmp_path / "rec")
    assert "\n" not in str(err.value)
