"""Model-size results -> input-size maps, in buffers a message can take without a copy."""

from __future__ import annotations

import array
from typing import Any, TypeVar, cast, overload

import cv2
import numpy as np
import numpy.typing as npt

_Label = TypeVar("_Label", bound=np.integer[Any])
_Scalar = TypeVar("_Scalar", bound=np.generic)


def upsample_nearest(
    label_map: npt.NDArray[_Label], size: tuple[int, int], out: npt.NDArray[_Label] | None = None
) -> npt.NDArray[_Label]:
    """Nearest-neighbour resize of an (h, w) label map to ``size`` = (height, width).

    Mapping (the contract tests check): output pixel (y, x) takes the source pixel whose
    cell contains the output pixel's centre mapped back, i.e. row ``i`` with
    ``i <= (y + 0.5) * h / height <= i + 1`` (likewise for columns); where that point falls
    exactly on a cell boundary either neighbour may be taken. This is OpenCV's
    ``INTER_NEAREST_EXACT``; plain ``INTER_NEAREST`` is shifted by half a pixel.

    ``out``: an (height, width) array of the map's dtype to write into (e.g. a
    :func:`message_buffer`, so the result becomes a message's data without a copy); the
    result is then ``out`` itself. Without ``out``, returns the input itself when the size
    already matches, else a new array.
    """
    height, width = size
    if out is not None:
        if out.shape != (height, width) or out.dtype != label_map.dtype or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous {(height, width)} {label_map.dtype} array, got {out.shape} {out.dtype}"
            )
        if label_map.shape[:2] == (height, width):
            np.copyto(out, label_map)
        else:
            cv2.resize(label_map, (width, height), dst=out, interpolation=cv2.INTER_NEAREST_EXACT)
        return out
    if label_map.shape[:2] == (height, width):
        return label_map
    # cv2 types its result as any numeric array; a nearest-neighbour resize keeps the dtype.
    return cast("npt.NDArray[_Label]", cv2.resize(label_map, (width, height), interpolation=cv2.INTER_NEAREST_EXACT))


@overload
def message_buffer(shape: tuple[int, ...]) -> npt.NDArray[np.uint8]: ...
@overload
def message_buffer(shape: tuple[int, ...], dtype: type[_Scalar] | np.dtype[_Scalar]) -> npt.NDArray[_Scalar]: ...
def message_buffer(shape: tuple[int, ...], dtype: npt.DTypeLike = np.uint8) -> npt.NDArray[Any]:
    """A new zeroed C-contiguous array whose memory is an ``array.array('B')``.

    rclpy keeps an ``array.array('B')`` assigned to a uint8[] field (``Image.data``) as is,
    so :func:`seg_perception.io.image_messages.build_image_message` turns such an array into a message
    without copying it (any other array costs one copy). Each call allocates a fresh buffer:
    results never alias each other.
    """
    item = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * item.itemsize
    data = array.array("B", bytes(1)) * nbytes  # zero-filled at memset speed
    return np.frombuffer(data, dtype=item).reshape(shape)
