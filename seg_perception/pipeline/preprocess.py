"""Frames of any size, encoding and colour order -> one uint8 RGB batch at the model size."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..image_conversion import ColorOrder, DecodedImage

_TO_RGB = {ColorOrder.BGR: cv2.COLOR_BGR2RGB, ColorOrder.MONO: cv2.COLOR_GRAY2RGB}


def resize_batch(
    images: Sequence[DecodedImage], size: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """Resize every frame to ``size`` = (height, width) into one (N, H, W, 3) uint8 RGB batch.

    Colour conversion happens after the resize, at the (smaller) model size. ``out`` may be
    a preallocated buffer of the right shape, reused between calls.
    """
    height, width = size
    shape = (len(images), height, width, 3)
    if out is None or out.shape != shape:
        out = np.empty(shape, np.uint8)
    for i, img in enumerate(images):
        src = img.pixels
        if src.dtype != np.uint8:
            raise TypeError(f"frames must be 8-bit, got {src.dtype} ({img.order.value})")
        if not (src.flags.c_contiguous or _rows_contiguous(src)):
            src = np.ascontiguousarray(src)
        interp = cv2.INTER_AREA if src.shape[0] > 2 * height else cv2.INTER_LINEAR
        if img.order is ColorOrder.RGB:
            cv2.resize(src, (width, height), dst=out[i], interpolation=interp)
        else:
            small = cv2.resize(src, (width, height), interpolation=interp)
            cv2.cvtColor(small, _TO_RGB[img.order], dst=out[i])
    return out


def _rows_contiguous(a: np.ndarray) -> bool:
    """True when each row is dense (pixels and channels packed) even if rows are padded,
    which OpenCV can read without a copy."""
    itemsize = a.itemsize
    if a.ndim == 2:
        return a.strides[1] == itemsize
    return a.strides[2] == itemsize and a.strides[1] == itemsize * a.shape[2]
