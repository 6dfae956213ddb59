"""numpy arrays -> ``sensor_msgs/Image`` messages, for any generated Image class.

The node publishes its outputs with this, and the benchmark times exactly this path; the
message class is a parameter, so nothing here imports a ROS message package.
"""

from __future__ import annotations

import array
import functools
from typing import Any

import numpy as np
import numpy.typing as npt

_ENCODINGS = {(np.dtype(np.uint8), 2): "mono8", (np.dtype(np.uint16), 2): "mono16", (np.dtype(np.uint8), 3): "rgb8"}


@functools.cache
def _keep_arrays(image_class: type) -> dict[str, bool]:
    # rclpy's generated setters store an array.array('B') for a uint8[] field as is only when
    # they check fields (Humble: always; Jazzy and later: with check_fields=True, off by
    # default, and then they copy every value through array.array('B', value)). Checked
    # construction costs a few isinstance checks; it saves a copy of every output image.
    return {"check_fields": True} if "_check_fields" in getattr(image_class, "__slots__", ()) else {}


def build_image_message(
    image_class: type, pixels: npt.NDArray[np.uint8 | np.uint16], header: Any, encoding: str | None = None
) -> Any:
    """An ``image_class`` message holding ``pixels`` ((H, W) uint8/uint16 or (H, W, 3) uint8)
    with one copy.

    ``header`` is used as is: outputs carry their input's stamp and frame_id unchanged.
    mono16 is written little-endian (``is_bigendian = 0``).
    """
    pixels = np.ascontiguousarray(pixels)
    if encoding is None:
        encoding = _ENCODINGS[(pixels.dtype, pixels.ndim)]
    if pixels.dtype.byteorder == ">" or (pixels.dtype.byteorder == "=" and np.little_endian is False):
        pixels = pixels.astype(pixels.dtype.newbyteorder("<"))
    msg = image_class(**_keep_arrays(image_class))
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


def _backing_array(pixels: npt.NDArray[Any]) -> array.array[Any] | None:
    """The ``array.array('B')`` that ``pixels`` (C-contiguous) exactly covers, or None.

    Arrays made by :func:`seg_perception.pipeline.postprocess.message_buffer` are such views:
    the message then shares their memory instead of copying it (the class map is not
    written after publishing; rclpy serialises during ``publish``).
    """
    base: object = pixels.base  # numpy types it as an array or None; any buffer exporter can be it
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
