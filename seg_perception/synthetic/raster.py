"""The rasteriser: polygons painted in order into a map of object ids (painter's algorithm).

Image and ground truth are looked up from the same id map, so the ground truth is exact: a
pixel carries the label of the surface visible in the image. Polygons are projected with
4 bits of sub-pixel precision and filled without anti-aliasing.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.camera import NEAR_M, Camera, encode_depth
from seg_perception.synthetic.geometry import FloatArray, Polygon

_SUBPIXEL_BITS = 4
_SUBPIXEL = 1 << _SUBPIXEL_BITS
_COORD_LIMIT = 2**30  # projected coordinates are clipped to keep OpenCV's fixed point in range


def rasterise(
    object_ids: npt.NDArray[np.int32], camera: Camera, polygons: list[Polygon], first_id: int
) -> npt.NDArray[np.uint8]:
    """Paint ``polygons`` in list order into the (H, W) int32 ``object_ids`` map, polygon i with
    id ``first_id + i``. Fills, or polylines for polygons with a line width; polygons crossing
    the near plane are clipped (their lines dropped). Returns the (N,) uint8 depth codes of the
    polygons (mean camera depth)."""
    n_polygons = len(polygons)
    if n_polygons == 0:
        return np.zeros(0, np.uint8)
    counts = np.fromiter((len(polygon.points) for polygon in polygons), np.int64, n_polygons)
    points = np.concatenate([polygon.points for polygon in polygons]).astype(np.float64, copy=False)
    cam_points = camera.to_camera(points)
    starts = np.zeros(n_polygons, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    depth = cam_points[:, 2]
    depth_min = np.minimum.reduceat(depth, starts)
    depth_max = np.maximum.reduceat(depth, starts)
    depth_mean = np.add.reduceat(depth, starts) / counts
    safe_depth = np.where(depth > NEAR_M * 0.5, depth, 1.0)  # points behind: projected, then unused
    u = camera.cx + camera.fx * cam_points[:, 0] / safe_depth
    v = camera.cy + camera.fy * cam_points[:, 1] / safe_depth
    width, height = camera.width, camera.height
    onscreen = (np.maximum.reduceat(u, starts) >= -2) & (np.minimum.reduceat(u, starts) <= width + 1)
    onscreen &= (np.maximum.reduceat(v, starts) >= -2) & (np.minimum.reduceat(v, starts) <= height + 1)
    onscreen &= depth_max > NEAR_M
    pixels = np.empty((len(u), 2), np.int32)
    pixels[:, 0] = np.clip(np.rint(u * _SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT)
    pixels[:, 1] = np.clip(np.rint(v * _SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT)
    clipped = (depth_min < NEAR_M).tolist()
    line_width_m = np.fromiter((polygon.line_width_m for polygon in polygons), np.float64, n_polygons)
    line_px = np.where(
        line_width_m > 0, np.maximum(1, np.rint(line_width_m * camera.fy / np.maximum(depth_mean, NEAR_M))), 0
    )
    thickness = line_px.astype(int).tolist()  # 0: fill
    starts_list, counts_list = starts.tolist(), counts.tolist()
    for i in np.flatnonzero(onscreen).tolist():
        start, count = starts_list[i], counts_list[i]
        if clipped[i]:
            if thickness[i]:
                continue  # lines crossing the near plane are dropped
            outline = _clip_and_project(cam_points[start : start + count], camera)
            if outline is None:
                continue
        else:
            outline = pixels[start : start + count]
        if thickness[i]:
            cv2.polylines(object_ids, [outline], False, first_id + i, thickness[i], cv2.LINE_8, _SUBPIXEL_BITS)
        else:
            cv2.fillPoly(object_ids, [outline], first_id + i, cv2.LINE_8, _SUBPIXEL_BITS)
    return encode_depth(np.maximum(depth_mean, NEAR_M))


def _clip_and_project(polygon: FloatArray, camera: Camera) -> npt.NDArray[np.int32] | None:
    """Sutherland-Hodgman clip of a camera-space polygon (N, 3) against z >= near, projected to
    fixed-point pixels (M, 2); None when less than a triangle is left."""
    kept = []
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        a_inside, b_inside = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_inside:
            kept.append(a)
        if a_inside != b_inside:
            t = (NEAR_M - a[2]) / (b[2] - a[2])
            kept.append(a + t * (b - a))
    if len(kept) < 3:
        return None
    clipped = np.array(kept)
    pixels = np.empty((len(clipped), 2), np.int32)
    u = camera.cx + camera.fx * clipped[:, 0] / clipped[:, 2]
    v = camera.cy + camera.fy * clipped[:, 1] / clipped[:, 2]
    pixels[:, 0] = np.clip(np.rint(u * _SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT)
    pixels[:, 1] = np.clip(np.rint(v * _SUBPIXEL), -_COORD_LIMIT, _COORD_LIMIT)
    return pixels
