"""Model-size results -> input-size maps, and overlays for humans."""

from __future__ import annotations

import cv2
import numpy as np


def upsample_nearest(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) label map to ``size`` = (height, width).

    Uses pixel-centre sampling (INTER_NEAREST_EXACT); cv2's plain INTER_NEAREST is shifted
    by half a pixel. Returns the input itself when the size already matches.
    """
    height, width = size
    if label_map.shape[:2] == (height, width):
        return label_map
    return cv2.resize(label_map, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 colours from a (256, 3) palette."""
    return palette[label_map]


def blend_overlay(rgb: np.ndarray, label_map: np.ndarray, palette: np.ndarray, alpha: float) -> np.ndarray:
    """(H, W, 3) RGB image blended with the colourised label map; alpha = label weight."""
    return cv2.addWeighted(colorize(label_map, palette), alpha, rgb, 1.0 - alpha, 0.0)
