"""rosbag2 files (sqlite3 and mcap) read and written with `rosbags` (no rosbag2 on PyPI).

Messages are built and (de)serialised with rosbags' own typestore (ROS 2 Humble definitions,
identical for the types used here across Humble, Jazzy and Kilted), so bags written here play
in ``ros2 bag play`` and bags recorded on a vehicle read here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from .image_conversion import encode_compressed, encode_image
from .synthetic import SyntheticFrame

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

# Ground-truth topics of generated drives, under the camera namespace.
GT_LABEL_IDS = "gt/label_ids"  # mono8, Cityscapes label ids
GT_INSTANCE_IDS = "gt/instance_ids"  # mono16, Cityscapes instanceIds encoding
GT_CONDITION = "gt/condition"  # std_msgs/String: day, night, fog, ...


def header(stamp_ns: int, frame_id: str) -> Any:
    types = TYPESTORE.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id,
    )


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    height, width, step, data = encode_image(pixels, encoding)
    return TYPESTORE.types[IMAGE](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8),
    )


def compressed_message(rgb: np.ndarray, fmt: str, stamp_ns: int, frame_id: str) -> Any:
    fmt_string, payload = encode_compressed(rgb, fmt)
    return TYPESTORE.types[COMPRESSED](
        header=header(stamp_ns, frame_id), format=fmt_string, data=np.frombuffer(payload, np.uint8)
    )


def write_drive_bag(
    path: str | Path,
    frames: Iterable[SyntheticFrame],
    fps: float = 10.0,
    storage: str = "sqlite3",
    camera: str = "/camera",
    compressed: str = "",
    frame_id: str = "camera_front",
    start_ns: int = 1_700_000_000_000_000_000,
) -> Path:
    """Write a generated drive: ``<camera>/image_raw`` (rgb8, or ``image_raw/compressed``
    when ``compressed`` is "jpeg"/"png") plus ground-truth topics, stamped at ``fps``."""
    path = Path(path)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    conditions: list[str] = []
    with Writer(path, version=8, storage_plugin=STORAGES[storage]) as writer:
        if compressed:
            cam = writer.add_connection(f"{camera}/image_raw/compressed", COMPRESSED, typestore=TYPESTORE)
        else:
            cam = writer.add_connection(f"{camera}/image_raw", IMAGE, typestore=TYPESTORE)
        gt_label = writer.add_connection(f"{camera}/{GT_LABEL_IDS}", IMAGE, typestore=TYPESTORE)
        gt_inst = writer.add_connection(f"{camera}/{GT_INSTANCE_IDS}", IMAGE, typestore=TYPESTORE)
        gt_cond = writer.add_connection(f"{camera}/{GT_CONDITION}", STRING, typestore=TYPESTORE)
        for i, frame in enumerate(frames):
            stamp = start_ns + round(i * 1e9 / fps)
            if compressed:
                cam_msg = compressed_message(frame.image, compressed, stamp, frame_id)
                writer.write(cam, stamp, TYPESTORE.serialize_cdr(cam_msg, COMPRESSED))
            else:
                cam_msg = image_message(frame.image, "rgb8", stamp, frame_id)
                writer.write(cam, stamp, TYPESTORE.serialize_cdr(cam_msg, IMAGE))
            for conn, pixels, enc in ((gt_label, frame.label_ids, "mono8"), (gt_inst, frame.instance_ids, "mono16")):
                writer.write(conn, stamp, TYPESTORE.serialize_cdr(image_message(pixels, enc, stamp, frame_id), IMAGE))
            cond = TYPESTORE.types[STRING](data=frame.condition)
            writer.write(gt_cond, stamp, TYPESTORE.serialize_cdr(cond, STRING))
            conditions.append(frame.condition)
        writer.set_custom_data("seg_perception.synthetic", json.dumps({"frames": len(conditions), "fps": fps}))
    return path
