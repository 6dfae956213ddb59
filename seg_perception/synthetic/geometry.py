"""3-D polygons and the solids, outlines and flat shapes that objects are built from.

All points are road coordinates (see :mod:`seg_perception.synthetic.camera`) as float64
arrays. Objects are modelled in *local* coordinates (a: lateral, y: up, l: along the object's
heading) and placed with :func:`local_to_road`; flat figures (people, tree crowns, sign faces)
are 2-D outlines (u along a horizontal axis, y up) placed in a vertical plane with
:func:`in_vertical_plane`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.colours import Colour, scale_colour
from seg_perception.synthetic.params import SceneParams

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
# Points as the drawing code writes them: arrays, or nested lists/tuples of numbers.
PointsLike: TypeAlias = FloatArray | Sequence[Sequence[float]]
# Colour of each face of a solid (bottom, top, side 0-1, side 1-2, side 2-3, side 3-0), None = not drawn.
FaceColours: TypeAlias = Colour | list[Colour | None]


class Polygon(NamedTuple):
    """One polygon to paint: (N, 3) road points, flat colour, object group (see ObjectRegistry)
    and ``line_width_m``: 0 fills the polygon, > 0 draws its outline as a polyline that wide."""

    points: FloatArray
    colour: Colour
    group: int
    line_width_m: float = 0.0


class Light:
    """Directional sun plus sky light: brightness factors for surface normals."""

    def __init__(self, params: SceneParams) -> None:
        elevation, azimuth = math.radians(params.sun_elevation_deg), math.radians(params.sun_azimuth_deg)
        self.sun = np.array(
            [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
        )
        # an overcast sky lights every face almost alike
        self.ambient, self.diffuse = (0.78, 0.2) if params.overcast else (0.62, 0.45)

    def shade(self, normals: FloatArray) -> FloatArray:
        """Brightness factors (about 0.5-1.2) for unit normals (..., 3); upward faces get a little sky."""
        facing_sun = np.clip(normals @ self.sun, 0.0, 1.0)
        shade: FloatArray = self.ambient + self.diffuse * facing_sun + 0.08 * normals[..., 1]
        return shade

    def shade_normal(self, normal: tuple[float, float, float]) -> float:
        """:meth:`shade` of one normal, as a float."""
        return float(self.shade(np.array(normal)))


# Faces of a solid given as 8 vertices (bottom quad 0-3, top quad 4-7):
# bottom, top, side 0-1, side 1-2, side 2-3, side 3-0.
SOLID_FACES = np.array([[3, 2, 1, 0], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
FACE_REAR, FACE_RIGHT, FACE_FRONT, FACE_LEFT = 2, 3, 4, 5  # of a box from box_vertices(): l0 is the rear
_CROSS_A, _CROSS_B = [1, 2, 0], [2, 0, 1]  # index permutations of a cross product


def add_solids(
    vertices: FloatArray,
    colours: Sequence[FaceColours],
    groups: Sequence[int],
    camera_position: FloatArray,
    light: Light,
    out: list[Polygon],
) -> BoolArray:
    """Append the camera-facing faces of convex solids, solid by solid, to ``out``.

    ``vertices``: (S, 8, 3) road points, bottom quad then top quad of each solid; ``colours[i]``
    one colour for every face or six (:data:`FaceColours`); ``groups[i]`` the object group.
    Faces are shaded by ``light``. Returns the (S, 6) bool face visibility.
    """
    faces = vertices[:, SOLID_FACES]
    diagonal_a = faces[:, :, 2] - faces[:, :, 0]
    diagonal_b = faces[:, :, 3] - faces[:, :, 1]
    normals = (
        diagonal_a[..., _CROSS_A] * diagonal_b[..., _CROSS_B] - diagonal_a[..., _CROSS_B] * diagonal_b[..., _CROSS_A]
    )
    centres = faces.sum(axis=2) * 0.25
    # orient every normal outwards (away from the solid's centroid), whatever the vertex order
    outward = ((centres - vertices.mean(axis=1)[:, None, :]) * normals).sum(axis=-1)
    normals[outward < 0] *= -1.0
    visible: BoolArray = ((camera_position - centres) * normals).sum(axis=-1) > 1e-9
    solid_idx, face_idx = np.nonzero(visible)
    if len(solid_idx):
        unit = normals[solid_idx, face_idx]
        unit /= np.sqrt((unit * unit).sum(axis=1))[:, None] + 1e-12
        shades = light.shade(unit).tolist()
        for solid, face, shade in zip(solid_idx.tolist(), face_idx.tolist(), shades):
            face_colours = colours[solid]
            colour = face_colours[face] if isinstance(face_colours, list) else face_colours
            if colour is not None:
                out.append(Polygon(faces[solid, face], scale_colour(colour, shade), groups[solid], 0.0))
    return visible


def add_solid(
    bottom: PointsLike,
    top: PointsLike,
    camera_position: FloatArray,
    light: Light,
    colours: FaceColours,
    group: int,
    out: list[Polygon],
) -> BoolArray:
    """One convex solid between a bottom and a top quad ((4, 3) each); see :func:`add_solids`.

    Returns the (6,) face visibility."""
    vertices = np.concatenate((np.asarray(bottom, float), np.asarray(top, float)))[None]
    visible: BoolArray = add_solids(vertices, [colours], [group], camera_position, light, out)[0]
    return visible


def local_to_road(centre_x: float, centre_z: float, heading: float, points: PointsLike) -> FloatArray:
    """Local points (..., 3) of an object at road (centre_x, centre_z) with ``heading`` (rad,
    0 = along the road) -> road coordinates (..., 3)."""
    local = np.asarray(points, float)
    c, s = math.cos(heading), math.sin(heading)
    out = np.empty_like(local)
    out[..., 0] = centre_x + local[..., 0] * c + local[..., 2] * s
    out[..., 1] = local[..., 1]
    out[..., 2] = centre_z - local[..., 0] * s + local[..., 2] * c
    return out


def inset_quad(quad: FloatArray, u0: float, u1: float, v0: float, v1: float) -> FloatArray:
    """Sub-quad of ``quad`` (corners p0 p1 p2 p3; p0->p1 is u, p0->p3 is v) from bilinear
    coordinates: u from ``u0`` to ``u1``, v from ``v0`` to ``1 - v1``. (4, 3)."""
    p0, p1, p2, p3 = quad

    def at(u: float, v: float) -> FloatArray:
        point: FloatArray = (1 - u) * (1 - v) * p0 + u * (1 - v) * p1 + u * v * p2 + (1 - u) * v * p3
        return point

    return np.array([at(u0, v0), at(u1, v0), at(u1, 1 - v1), at(u0, 1 - v1)])


def box_vertices(a0: float, a1: float, y0: float, y1: float, l0: float, l1: float) -> list[list[float]]:
    """The 8 vertices (bottom quad, top quad) of an axis-aligned local box."""
    return [
        [a0, y0, l0],
        [a1, y0, l0],
        [a1, y0, l1],
        [a0, y0, l1],
        [a0, y1, l0],
        [a1, y1, l0],
        [a1, y1, l1],
        [a0, y1, l1],
    ]


def box_quads(
    a0: float, a1: float, y0: float, y1: float, l0: float, l1: float
) -> tuple[list[list[float]], list[list[float]]]:
    """(bottom quad, top quad) of an axis-aligned box, for :func:`add_solid`."""
    bottom = [[a0, y0, l0], [a1, y0, l0], [a1, y0, l1], [a0, y0, l1]]
    top = [[a0, y1, l0], [a1, y1, l0], [a1, y1, l1], [a0, y1, l1]]
    return bottom, top


@functools.lru_cache(maxsize=64)
def unit_circle(n: int, offset: float = 0.0) -> tuple[FloatArray, FloatArray]:
    """(cos, sin) of ``n`` angles evenly spaced from ``offset`` (rad); cached, do not modify."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False) + offset
    return np.cos(angles), np.sin(angles)


def ellipse(n: int, centre_u: float, centre_v: float, radius_u: float, radius_v: float) -> FloatArray:
    """(n, 2) outline of an axis-aligned ellipse, starting at angle 0."""
    cos, sin = unit_circle(n)
    out = np.empty((n, 2))
    out[:, 0] = centre_u + radius_u * cos
    out[:, 1] = centre_v + radius_v * sin
    return out


def rotated_polygon(n: int, centre_u: float, centre_v: float, radius: float) -> FloatArray:
    """(n, 2) regular polygon turned by half a step (an octagon with a flat top: a stop sign)."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False) + np.pi / n
    return np.stack([centre_u + radius * np.cos(angles), centre_v + radius * np.sin(angles)], axis=1)


def limb(
    start: Sequence[float], end: Sequence[float], width_start: float, width_end: float | None = None
) -> FloatArray:
    """(4, 2) quad around the 2-D segment ``start -> end``, ``width_start`` wide at the start and
    ``width_end`` (default: the same) at the end: legs, arms, bicycle tubes."""
    width_end = width_start if width_end is None else width_end
    direction = np.subtract(end, start, dtype=float)
    normal = np.array([-direction[1], direction[0]]) / (math.hypot(direction[0], direction[1]) + 1e-9)
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    return np.array(
        [
            p0 + normal * width_start / 2,
            p1 + normal * width_end / 2,
            p1 - normal * width_end / 2,
            p0 - normal * width_start / 2,
        ]
    )


def in_vertical_plane(origin: Sequence[float], axis: Sequence[float], outline: PointsLike) -> FloatArray:
    """2-D points (u, y) -> (N, 3) road points in the vertical plane through ``origin`` spanned
    by the horizontal unit vector ``axis`` (x, z) and the vertical."""
    outline = np.asarray(outline, float)
    out = np.empty((len(outline), 3))
    out[:, 0] = origin[0] + outline[:, 0] * axis[0]
    out[:, 1] = origin[1] + outline[:, 1]
    out[:, 2] = origin[2] + outline[:, 0] * axis[1]
    return out


def add_flat_shapes(
    out: list[Polygon],
    origin: Sequence[float],
    axis: Sequence[float],
    shapes: list[tuple[FloatArray, Colour]],
    group: int,
) -> None:
    """Append 2-D outlines ``[(points (N, 2), colour), ...]`` drawn in a vertical plane (see
    :func:`in_vertical_plane`), transformed in one batch."""
    if not shapes:
        return
    points = in_vertical_plane(origin, axis, np.concatenate([outline for outline, _ in shapes]))
    offset = 0
    for outline, colour in shapes:
        out.append(Polygon(points[offset : offset + len(outline)], colour, group, 0.0))
        offset += len(outline)
