"""Calibration frames for int8 exports: from a ``.npy`` array, a folder of images or a recorded
drive (rosbag2), resized to the model input size as the pipeline resizes camera frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from seg_perception.export.errors import OnnxExportError


def load_calibration_frames(source: str | Path, input_size: tuple[int, int], limit: int = 256) -> npt.NDArray[np.uint8]:
    """Calibration frames from a ``.npy`` (N, H, W, 3) uint8 RGB array or a folder of images
    (png/jpg, read as BGR and converted), resized to ``input_size`` = (height, width), at
    most ``limit`` of them (evenly spaced over the source)."""
    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.pipeline.preprocess import resize_batch

    src = Path(source)
    if src.is_file() and src.suffix == ".npy":
        frames = np.load(src, mmap_mode="r")
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise OnnxExportError(f"{src} holds {frames.dtype} {frames.shape}; expected uint8 (N, H, W, 3) RGB")
        pick = np.linspace(0, len(frames) - 1, min(limit, len(frames))).round().astype(int)
        images = [DecodedImage(np.ascontiguousarray(frames[i]), ColorOrder.RGB) for i in pick]
    elif src.is_dir():
        import cv2

        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise OnnxExportError(f"no png/jpg images under {src}")
        pick = np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)
        images = []
        for i in dict.fromkeys(pick.tolist()):
            bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OnnxExportError(f"cannot read calibration image {files[i]}")
            # IMREAD_COLOR decodes to 8-bit BGR; cv2 types it as any numeric array.
            images.append(DecodedImage(cast("npt.NDArray[np.uint8]", bgr), ColorOrder.BGR))
    else:
        raise OnnxExportError(f"calibration source {src} is neither a .npy file nor a folder of images")
    return resize_batch(images, input_size)


def bag_calibration_frames(
    bag: str | Path, input_size: tuple[int, int], limit: int = 256, topic: str | None = None
) -> npt.NDArray[np.uint8]:
    """Calibration frames from a rosbag2 (sqlite3 or mcap) camera topic: ``sensor_msgs/Image``
    or ``CompressedImage``, at most ``limit`` evenly spaced over the recording, resized to
    ``input_size`` = (height, width) as the pipeline does. ``topic`` default: the bag's only
    camera topic (bag reading: :mod:`seg_perception.io.bags`, as replay does)."""
    from seg_perception.io.bags import COMPRESSED, camera_connections, deserialize, open_bag, read_messages
    from seg_perception.io.compressed import decode_compressed
    from seg_perception.io.image import decode_image
    from seg_perception.pipeline.preprocess import resize_batch

    reader = open_bag(bag)
    try:
        cameras = camera_connections(reader, [topic] if topic else ())
        total = sum(c.msgcount for c in cameras)
        pick = set(np.linspace(0, total - 1, min(limit, total)).round().astype(int).tolist()) if total else set()
        images = []
        for i, (conn, _, raw) in enumerate(read_messages(reader, cameras)):
            if i in pick:
                msg = deserialize(raw, conn.msgtype)
                images.append(decode_compressed(msg) if conn.msgtype == COMPRESSED else decode_image(msg))
    finally:
        reader.close()
    if not images:
        raise OnnxExportError(f"bag {bag}: camera topic {cameras[0].topic} has no messages")
    return resize_batch(images, input_size)
