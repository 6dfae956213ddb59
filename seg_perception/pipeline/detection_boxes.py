"""The box of each instance as Detection2DArray carries it, for the nodes and replay alike.

A box is the extent of the instance's pixels in the published instance map (not the detector's
box, which is not what the map shows), so both outputs agree. Pixel (u, v) is centred on integer
coordinates, as in sensor_msgs/CameraInfo: a box over columns a..b has centre x (a + b) / 2 and
size_x b - a + 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from seg_perception.pipeline.instance import InstanceRecord, InstanceResult

# Mask pixels lie near the detector's box (torchvision pastes a mask into the box grown by
# (M + 2) / M, M = 28): searching the box grown by this much first avoids scanning the frame.
_SEARCH_GROWTH = 0.1
_SEARCH_PAD = 2


class DetectionBox(NamedTuple):
    """Centre and size in pixels (vision_msgs/BoundingBox2D)."""

    center_x: float
    center_y: float
    size_x: float
    size_y: float


def pixel_box(instance_map: npt.NDArray[np.uint16], inst: InstanceRecord) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max, y_max), inclusive, of the pixels of ``inst`` in ``instance_map``.

    Searches a window around the detector's box and takes it when it holds all ``inst.area``
    pixels; else (a mask that reaches further) the whole map. An instance always owns a pixel.
    """
    height, width = instance_map.shape
    x0, y0, x1, y1 = inst.bbox
    gx, gy = _SEARCH_GROWTH * (x1 - x0) + _SEARCH_PAD, _SEARCH_GROWTH * (y1 - y0) + _SEARCH_PAD
    wx0, wy0 = max(int(x0 - gx), 0), max(int(y0 - gy), 0)
    wx1, wy1 = min(int(np.ceil(x1 + gx)), width), min(int(np.ceil(y1 + gy)), height)
    mask = instance_map[wy0:wy1, wx0:wx1] == inst.value
    if int(np.count_nonzero(mask)) != inst.area:
        wx0 = wy0 = 0
        mask = instance_map == inst.value
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        raise ValueError(f"instance {inst.value} has no pixel in the instance map")
    return wx0 + int(cols[0]), wy0 + int(rows[0]), wx0 + int(cols[-1]), wy0 + int(rows[-1])


def detection_boxes(result: InstanceResult) -> list[DetectionBox]:
    """One box per instance of ``result``, in the order of ``result.instances``."""
    boxes = []
    for inst in result.instances:
        xa, ya, xb, yb = pixel_box(result.instance_map, inst)
        boxes.append(DetectionBox((xa + xb) / 2.0, (ya + yb) / 2.0, float(xb - xa + 1), float(yb - ya + 1)))
    return boxes
