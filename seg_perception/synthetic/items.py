"""Render items (the polygons of one object) and the back-to-front order they are painted in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from seg_perception.synthetic.geometry import Polygon

LAYER_BACKDROP = 0  # painted first, farthest first
LAYER_SCENE = 1


class Footprint(NamedTuple):
    """Ground rectangle of an item, road x from ``x0`` to ``x1``, camera-relative z from ``z0`` to ``z1`` (m)."""

    x0: float
    x1: float
    z0: float
    z1: float


class LampPool(NamedTuple):
    """Light pool of a street lamp on the ground: centre road x, camera-relative z, radius (m)."""

    x: float
    z: float
    radius_m: float


@dataclass
class RenderItem:
    """One object to paint: its polygons (painted in list order), its ``footprint`` for the
    visibility order and its ``distance`` from the camera (m; tie-break: farther first)."""

    layer: int
    distance: float
    footprint: Footprint
    polygons: list[Polygon] = field(default_factory=list)


def paint_order(items: list[RenderItem], camera_x: float) -> list[RenderItem]:
    """Order items back to front: the backdrop (farthest first), then the scene.

    Footprints are disjoint rectangles on the ground seen from the camera at (camera_x, 0): A
    must be painted after B when an axis separates them with the camera on A's side, and only
    if their angular extents overlap (otherwise they cannot overlap in the image). The
    resulting partial order is resolved farthest-first (Kahn's algorithm with a priority).
    """
    backdrop = [item for item in items if item.layer == LAYER_BACKDROP]
    backdrop.sort(key=lambda item: -item.distance)
    rest = [item for item in items if item.layer != LAYER_BACKDROP]
    n = len(rest)
    if n == 0:
        return backdrop
    rects = np.array([item.footprint for item in rest], float)
    x0, x1, z0, z1 = rects[:, 0] - camera_x, rects[:, 1] - camera_x, rects[:, 2], rects[:, 3]
    distance = np.array([item.distance for item in rest])
    # angular extent (from the forward axis) of each footprint; one reaching behind the camera spans everything
    angles = np.arctan2(np.stack([x0, x1, x0, x1], 1), np.stack([z0, z0, z1, z1], 1))
    angle_min, angle_max = angles.min(1), angles.max(1)
    behind = z0 <= 0.05
    angle_min[behind], angle_max[behind] = -np.pi, np.pi
    overlap = (angle_min[:, None] < angle_max[None, :]) & (angle_min[None, :] < angle_max[:, None])
    a_x0, a_x1, a_z0, a_z1 = x0[:, None], x1[:, None], z0[:, None], z1[:, None]
    # in_front[a, b]: a is in front of b (painted after b); the camera is at x = 0, z = 0
    in_front = (x0[None, :] >= a_x1) & (a_x1 >= 0)
    in_front |= (x1[None, :] <= a_x0) & (a_x0 <= 0)
    in_front |= (z0[None, :] >= a_z1) & (a_z1 >= 0)
    in_front |= (z1[None, :] <= a_z0) & (a_z0 <= 0)
    in_front &= overlap
    in_front &= ~in_front.T  # contradicting axes: the two cannot overlap in the image
    np.fill_diagonal(in_front, False)
    behind_count = in_front.sum(axis=1)  # items each one must wait for
    done = np.zeros(n, bool)
    order = []
    for _ in range(n):
        ready = (behind_count == 0) & ~done
        # a cycle (not expected) is broken by painting the farthest remaining item
        candidates = np.flatnonzero(ready) if ready.any() else np.flatnonzero(~done)
        i = int(candidates[np.argmax(distance[candidates])])
        order.append(i)
        done[i] = True
        behind_count -= in_front[:, i]
    return backdrop + [rest[i] for i in order]


def split_by_distance(z0: float, z1: float) -> list[float]:
    """Break points that split [z0, z1] (camera-relative, m) into pieces about 25 % of their
    distance long (at least 1.5 m): long walls bend with the road and clip well at the near plane."""
    breaks = [z0]
    z = z0
    while z < z1:
        z = min(z1, z + max(1.5, 0.25 * max(z, 0.0)))
        breaks.append(z)
    return breaks
