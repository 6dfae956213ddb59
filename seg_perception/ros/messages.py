"""numpy <-> sensor_msgs conversion for outputs (inputs are decoded duck-typed in the core)."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

_ENCODINGS = {(np.dtype(np.uint8), 2): "mono8", (np.dtype(np.uint16), 2): "mono16", (np.dtype(np.uint8), 3): "rgb8"}


# rclpy's generated setters store an array.array('B') for a uint8[] field as is only when they
# check fields (Humble: always; Jazzy and later: with check_fields=True, off by default, and
# then they copy every value through array.array('B', value)). Checked construction costs a
# few isinstance checks; it saves a copy of every output image.
_KEEP_ARRAYS = {"check_fields": True} if "_check_fields" in Image.__slots__ else {}


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
    msg = Image(**_KEEP_ARRAYS)
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    data = _backing_array(pixels)
    if data is None:
        data = array.array("B")
        data.frombytes(pixels.data.cast("B"))  # the one copy
    msg.data = data  # rclpy keeps an array.array('B') as is (no copy, no per-byte check)
    return msg


def _backing_array(pixels: np.ndarray) -> array.array | None:
    """The ``array.array('B')`` that ``pixels`` (C-contiguous) exactly covers, or None.

    Arrays made by :func:`seg_perception.pipeline.postprocess.message_buffer` are such views:
    the message then shares their memory instead of copying it (the class map is not
    written after publishing; rclpy serialises during ``publish``).
    """
    base = pixels.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer keeps a memoryview of the exporter
        base = base.obj
    if not (isinstance(base, array.array) and base.typecode == "B"):
        return None
    address, length = base.buffer_info()
    if length != pixels.nbytes or address != pixels.__array_interface__["data"][0]:
        return None
    return base


def stamp_ns(header: Header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
