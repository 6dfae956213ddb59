"""Bags as other tools write them: Foxglove's ``mcap-ros2-support`` writer (split MCAP files the
way rosbag2 names them, without metadata.yaml, optionally cut off like a killed recorder) and
rosbags' Writer (sqlite3, mcap, zstd file and message compression). Nothing here goes through
seg_perception's own writers."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap_ros2.writer import Writer as McapRos2Writer
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
TOPIC = "/front/image_raw"
COMPRESSED_TOPIC = "/rear/image_raw/compressed"  # a second camera

# ROS 2 message definitions as rosbag2 stores them in MCAP schemas (ros2msg, dependencies
# appended after separator lines), written out here rather than taken from our code.
_SEP = "=" * 80
_HEADER_DEFS = (
    f"{_SEP}\nMSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"
    f"{_SEP}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
)
IMAGE_MSGDEF = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
    f"uint32 step\nuint8[] data\n{_HEADER_DEFS}"
)
COMPRESSED_MSGDEF = f"std_msgs/Header header\nstring format\nuint8[] data\n{_HEADER_DEFS}"


def frame_pixels(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """An rgb8 frame that differs per index (a gradient shifted by it)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([(xx * 4 + index * 7) % 256, (yy * 5) % 256, np.full_like(xx, index * 20 % 256)], -1).astype(
        np.uint8
    )


def _stamp(index: int) -> tuple[int, dict]:
    t = START_NS + index * PERIOD_NS
    return t, {"stamp": {"sec": t // 1_000_000_000, "nanosec": t % 1_000_000_000}, "frame_id": "front"}


def write_split_mcap(
    folder: Path,
    frames: int,
    files: int = 3,
    kinds: tuple[str, ...] = ("image",),
    finish_last: bool = True,
    chunk_size: int = 1024 * 1024,
    chunk_compression: str = "zstd",
    crcs: bool = True,
) -> list[Path]:
    """A rosbag2-style split recording of ``frames`` frames per camera over ``files`` MCAP files
    ``<folder name>_<i>.mcap`` and no metadata.yaml. ``kinds``: "image" (sensor_msgs/Image on
    TOPIC) and/or "compressed" (CompressedImage, png, on COMPRESSED_TOPIC). ``finish_last=False``
    leaves the last file as a killed recorder does: no summary, no footer, open chunk unwritten."""
    folder.mkdir(parents=True)
    per_file = -(-frames // files)
    paths = []
    for i in range(files):
        path = folder / f"{folder.name}_{i}.mcap"
        stream = path.open("wb")
        writer = McapRos2Writer(
            stream, chunk_size=chunk_size, compression=CompressionType[chunk_compression.upper()], enable_crcs=crcs
        )
        schemas = {
            "image": writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF),
            "compressed": writer.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_MSGDEF),
        }
        for k in range(i * per_file, min(frames, (i + 1) * per_file)):
            t, header = _stamp(k)
            rgb = frame_pixels(k)
            for kind in kinds:
                if kind == "compressed":
                    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
                    assert ok
                    msg = {"header": header, "format": "rgb8; png compressed bgr8", "data": png.tobytes()}
                    writer.write_message(COMPRESSED_TOPIC, schemas[kind], msg, log_time=t)
                else:
                    h, w, _ = rgb.shape
                    msg = {
                        "header": header,
                        "height": h,
                        "width": w,
                        "encoding": "rgb8",
                        "is_bigendian": 0,
                        "step": w * 3,
                        "data": rgb.tobytes(),
                    }
                    writer.write_message(TOPIC, schemas[kind], msg, log_time=t)
        if finish_last or i < files - 1:
            writer.finish()
        stream.close()
        paths.append(path)
    return paths


def cut_inside_chunk(path: Path, chunk: int) -> None:
    """Cut a finished MCAP file in the middle of its ``chunk``-th chunk (0-based), as if the
    recorder died writing it. Written with ``chunk_size=1``, every chunk holds one message."""
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    chunks = sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)
    target = chunks[chunk]
    path.write_bytes(path.read_bytes()[: target.chunk_start_offset + target.chunk_length // 2])


def rosbags_bag(path: Path, frames: int, storage: str, compression: str = "", first: int = 0, name: str = "") -> Path:
    """A camera bag written by rosbags' Writer (``compression``: "", "file" or "message", zstd)."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    writer = Writer(path, version=8, storage_plugin=StoragePlugin[storage.upper()])
    if compression:
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection(TOPIC, "sensor_msgs/msg/Image", typestore=store)
        for k in range(first, first + frames):
            stamp, _ = _stamp(k)
            rgb = frame_pixels(k)
            msg = t["sensor_msgs/msg/Image"](
                header=t["std_msgs/msg/Header"](
                    stamp=t["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="front"
                ),
                height=rgb.shape[0],
                width=rgb.shape[1],
                encoding="rgb8",
                is_bigendian=0,
                step=rgb.shape[1] * 3,
                data=rgb.reshape(-1),
            )
            writer.write(conn, stamp, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    if name:
        for f in path.iterdir():
            if f.name != "metadata.yaml":
                f.rename(path / f.name.replace(path.name, name, 1))
    return path


def split_without_metadata(folder: Path, parts: list[Path]) -> Path:
    """One folder holding the storage files of ``parts`` (rosbags bags written with split names),
    without any metadata.yaml: what a killed recorder leaves."""
    folder.mkdir(parents=True)
    for part in parts:
        for f in part.iterdir():
            if f.name != "metadata.yaml":
                shutil.move(str(f), folder / f.name)
    return folder
