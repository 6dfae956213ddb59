"""numpy <-> sensor_msgs conversion for outputs (inputs are decoded duck-typed in the core)."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

_ENCODINGS = {(np.dtype(np.uint8), 2): "mono8", (np.dtype(np.uint16), 2): "mono16", (np.dtype(np.uint8), 3): "rgb8"}


def image_msg(pixels: np.ndarray, header: Header, encoding: str | None = None) -> Image:
    """An Image holding ``pixels`` ((H, W) uint8/uint16 or (H, W, 3) uint8) with one copy.

    ``header`` is used as is: outputs carry their input's stamp and frame_id unchanged.
    mono16 is written little-endian (``is_bigendian = 0``).
    """
    pixels = np.ascontiguousarray(pixels)
    if encoding is None:
        encoding = _ENCODINGS[(pixels.dtype, pixels.ndim)]
    if pixels.dtype.byteorder == ">" or (pixels.dtype.byteorder == "=" and np.little_endian is False):
        pixels = pixels.astype(pixels.dtype.newbyteorder("<"))
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    data = array.array("B")
    data.frombytes(pixels.data.cast("B"))
    msg.data = data
    return msg


def stamp_ns(header: Header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
