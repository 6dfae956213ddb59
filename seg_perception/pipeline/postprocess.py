"""Model-size results -> input-size maps, and overlays for humans."""

from __future__ import annotations

import array

import cv2
import numpy as np


def upsample_nearest(label_map: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
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
    return cv2.resize(label_map, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def message_buffer(shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """A new zeroed C-contiguous array whose memory is an ``array.array('B')``.

    rclpy keeps an ``array.array('B')`` assigned to a uint8[] field (``Image.data``) as is,
    so :func:`seg_perception.ros.messages.image_msg` turns such an array into a message
    without copying it (any other array costs one copy). Each call allocates a fresh buffer:
    results never alias each other.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    data = array.array("B", bytes(1)) * nbytes  # zero-filled at memset speed
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 colours from a (256, 3) palette."""
    return palette[label_map]


def blend_overlay(rgb: np.ndarray, label_map: np.ndarray, palette: np.ndarray, alpha: float) -> np.ndarray:
    """(H, W, 3) RGB image blended with the colourised label map; alpha = label weight."""
    return cv2.addWeighted(colorize(label_map, palette), alpha, rgb, 1.0 - alpha, 0.0)
