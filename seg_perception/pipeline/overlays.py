"""Overlays for RViz: class maps in their palette colours blended over the camera frame, and
instance masks with boxes and "class score" labels, each instance of a class in its own shade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from seg_perception.pipeline.instance import InstanceResult


def colorize(label_map: npt.NDArray[np.integer[Any]], palette: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W) ids -> (H, W, 3) uint8 colours from a (256, 3) palette."""
    colours: npt.NDArray[np.uint8] = palette[label_map]  # numpy types fancy indexing as Any
    return colours


def blend_overlay(
    rgb: npt.NDArray[np.uint8], label_map: npt.NDArray[np.integer[Any]], palette: npt.NDArray[np.uint8], alpha: float
) -> npt.NDArray[np.uint8]:
    """(H, W, 3) RGB image blended with the colourised label map; alpha = label weight."""
    blended = cv2.addWeighted(colorize(label_map, palette), alpha, rgb, 1.0 - alpha, 0.0)
    return cast("npt.NDArray[np.uint8]", blended)  # uint8 in, uint8 out; cv2 types it as any numeric array


_SHADES = (1.0, 0.7, 1.3, 0.5, 1.5)  # instances of one class differ in brightness


def draw_instance_overlay(
    rgb: npt.NDArray[np.uint8],
    result: InstanceResult,
    palette: npt.NDArray[np.uint8],
    alpha: float = 0.5,
    draw_boxes: bool = True,
    draw_labels: bool = True,
) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB with each instance's mask blended in its class colour (palette by
    train id, brightness varied by k), its box, and a "class score" label. Returns a new
    array; ``rgb`` is not modified."""
    if rgb.shape[:2] != result.instance_map.shape:
        raise ValueError(f"image {rgb.shape[:2]} and instance map {result.instance_map.shape} differ in size")
    out = np.array(rgb, dtype=np.uint8, copy=True)
    colours = {}
    for r in result.instances:
        shaded = palette[r.train_id].astype(np.float32) * _SHADES[(r.k - 1) % len(_SHADES)]
        colours[r.value] = tuple(int(v) for v in np.clip(shaded, 0, 255))
    inst = result.instance_map
    on = inst > 0
    if colours and on.any():
        lut = np.zeros((np.iinfo(np.uint16).max + 1, 3), np.float32)  # one colour per instance value
        for value, colour in colours.items():
            lut[value] = colour
        blended = alpha * lut[inst[on]] + (1.0 - alpha) * out[on].astype(np.float32)
        out[on] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    height, width = inst.shape
    thickness = max(1, round(min(height, width) / 360))
    font_scale = max(0.35, min(height, width) / 1200)
    for r in result.instances:
        colour = colours[r.value]
        x0, y0, x1, y1 = (round(v) for v in r.bbox)
        if draw_boxes:
            cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thickness)
        if draw_labels:
            text = f"{r.name} {r.score:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(y0 + th + base + 2, height - 1)
            tx = min(max(x0, 0), max(width - tw, 0))
            cv2.rectangle(out, (tx, ty - th - base), (tx + tw, ty), colour, cv2.FILLED)
            luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
            ink = (0, 0, 0) if luminance > 128 else (255, 255, 255)
            cv2.putText(out, text, (tx, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, 1, cv2.LINE_AA)
    return out
