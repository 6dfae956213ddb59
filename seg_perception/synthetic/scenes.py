"""Procedural forward-camera road scenes with exact Cityscapes ground truth.

The project has no downloadable data, so it renders its own: a pinhole camera 1.2-1.8 m above
a (possibly curving) road, looking forward with a small pitch and yaw. Every frame has

* the RGB image (uint8),
* Cityscapes *label ids* per pixel (road 7, sidewalk 8, building 11, ..., car 26, ...),
* Cityscapes *instanceIds* per pixel (``label_id * 1000 + k`` for thing pixels, else the
  label id),

and both are produced by the same painter's-algorithm rasteriser, so occlusion in the ground
truth is exact: a pixel carries the label of the surface that is visible in the image.

Scene content: a sky gradient with clouds; the road surface is computed per pixel from the
ground-plane geometry (lanes, dashed/solid/yellow markings, crosswalks, stop lines, raised
kerbs, paved sidewalks, grass verges); buildings with windows, walls, fences, hedges, trees,
street lamps, traffic signs and traffic lights stand along the road; cars, trucks, buses,
pedestrians and riders on bicycles/motorcycles are built from 3-D solids and limb polygons
in road coordinates, so their size follows perspective. Conditions (day, dusk, night, fog,
rain, noise, motion blur, over/under exposure) change only the image, never the ground
truth.

Everything is deterministic: a frame depends on ``(seed, index, width, height, condition)``
only, through ``np.random.default_rng`` streams seeded from those numbers; the scene layout
does not depend on the image size or on the condition (only the level of detail of small
objects follows the pixel size). :func:`generate_drive` simulates a
coherent drive (ego motion along the road, traffic that keeps its identity and instance
number, pedestrians walking, lane dashes streaming past).

This module is pure numpy/OpenCV: no rclpy, no torch.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seg_perception.labels import LabelSet, load_label_set

__all__ = [
    "CONDITIONS",
    "SceneParams",
    "SyntheticFrame",
    "colorize_label_ids",
    "generate_drive",
    "generate_frame",
    "write_cityscapes",
]

CONDITIONS = (
    "day",
    "dusk",
    "night",
    "fog",
    "rain",
    "noise",
    "motion_blur",
    "overexposed",
    "underexposed",
)
# Probabilities with which a condition is drawn when none is given: half of the frames are
# plain daylight, the rest spread over the degraded conditions.
_CONDITION_P = np.array([0.44, 0.07, 0.09, 0.07, 0.07, 0.07, 0.07, 0.06, 0.06])

# Cityscapes label ids (config/labels/cityscapes.yaml; the tests check these against it).
UNLABELED = 0
ROAD, SIDEWALK = 7, 8
BUILDING, WALL, FENCE = 11, 12, 13
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS = 24, 25, 26, 27, 28
MOTORCYCLE, BICYCLE = 32, 33
THING_LABEL_IDS = (PERSON, RIDER, CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE)

# Seed-stream tags: every random stream is ``default_rng([seed, index, TAG, ...])``.
_T_SCENE, _T_COND, _T_FX, _T_TEX, _T_STATIC, _T_DRIVE, _T_AGENTS = 1, 2, 3, 4, 5, 6, 7

_NEAR = 0.15  # near clipping plane (m, camera z)
_CHUNK = 50.0  # static world is generated in chunks of this length along the road
_AHEAD = 240.0  # content is kept up to this far ahead of the camera
_BEHIND = 40.0  # ... and this far behind it
_ZMAX_ENC = 2000.0  # depth channel encodes log depth up to this distance
_LOG_ZMAX = math.log1p(_ZMAX_ENC)
_DEPTH_LUT = np.expm1(np.arange(256, dtype=np.float64) * _LOG_ZMAX / 254.0).astype(np.float32)
_DEPTH_LUT[255] = 1e5  # sky: infinitely far

# texture classes: (fine noise amplitude, coarse noise amplitude)
_TEX = np.array(
    [
        (0.015, 0.02),  # 0 flat: glass, signs, markings
        (0.07, 0.045),  # 1 road asphalt
        (0.05, 0.05),  # 2 sidewalk paving
        (0.10, 0.24),  # 3 terrain grass
        (0.22, 0.20),  # 4 vegetation
        (0.035, 0.07),  # 5 building walls
        (0.0, 0.0),  # 6 sky (clouds are added separately)
        (0.02, 0.05),  # 7 vehicle paint
        (0.05, 0.05),  # 8 clothes / skin
        (0.03, 0.04),  # 9 metal, concrete
    ],
    np.float32,
)
_TX_FLAT, _TX_ROAD, _TX_SIDEWALK, _TX_TERRAIN, _TX_VEG, _TX_BUILDING, _TX_SKY, _TX_VEH, _TX_CLOTH, _TX_METAL = range(10)


def _rng(*ints: int) -> np.random.Generator:
    return np.random.default_rng([int(i) % (1 << 63) for i in ints])


# --------------------------------------------------------------------------------------
# label set helpers


@functools.lru_cache(maxsize=1)
def _label_set() -> LabelSet:
    return load_label_set("cityscapes")


@functools.lru_cache(maxsize=1)
def _label_to_train() -> np.ndarray:
    lut = _label_set().label_to_train_id()
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=1)
def _label_colors() -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for lab in _label_set().labels:
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.color
    lut.setflags(write=False)
    return lut


def colorize_label_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) Cityscapes label ids -> (H, W, 3) uint8 RGB with the label set colours."""
    return _label_colors()[label_ids]


# --------------------------------------------------------------------------------------
# public data types


@dataclass(frozen=True)
class SceneParams:
    """Geometry and appearance of one scene (sampled per frame, or once per drive).

    Camera: ``pitch_deg > 0`` tilts the camera down (the horizon moves up), ``yaw_deg > 0``
    turns it right. Road: right-hand traffic; ``lanes_forward`` lanes go the camera's way
    right of the centre line, ``lanes_backward`` lanes come towards it; ``ego_lane`` counts
    forward lanes from the centre line. ``curvature_per_m > 0`` bends the road to the right.
    """

    camera_height_m: float
    pitch_deg: float
    hfov_deg: float
    condition: str
    yaw_deg: float = 0.0
    curvature_per_m: float = 0.0
    lane_width_m: float = 3.5
    lanes_forward: int = 2
    lanes_backward: int = 1
    ego_lane: int = 0
    lateral_offset_m: float = 0.0
    parking_left: bool = False
    parking_right: bool = True
    kerb_height_m: float = 0.14
    sidewalk_left_m: float = 3.0
    sidewalk_right_m: float = 3.0
    verge_left_m: float = 0.0
    verge_right_m: float = 0.0
    style_left: str = "urban"  # urban | suburban | green
    style_right: str = "urban"
    centre_line: str = "dashed"  # dashed | solid | double
    yellow_centre: bool = False
    speed_mps: float = 10.0
    traffic_density: float = 0.6
    pedestrian_density: float = 0.5
    sun_elevation_deg: float = 40.0
    sun_azimuth_deg: float = 30.0
    overcast: bool = False
    look_seed: int = 0

    @staticmethod
    def sample(rng: np.random.Generator, condition: str) -> SceneParams:
        """Draw a plausible urban/suburban scene."""
        nf = _choose(rng, (1, 2, 2, 3))
        nb = _choose(rng, (0, 1, 1, 2, 2)) if nf < 3 else _choose(rng, (1, 2, 3))
        styles = ("urban", "urban", "urban", "suburban", "green")
        style_r = _choose(rng, styles)
        style_l = style_r if rng.random() < 0.6 else _choose(rng, styles)

        def sidewalk(style: str) -> float:
            return float(rng.uniform(2.0, 5.0) if style == "urban" else rng.uniform(1.4, 2.6))

        def verge(style: str) -> float:
            p = {"urban": 0.2, "suburban": 0.7, "green": 0.9}[style]
            return float(rng.uniform(0.8, 3.0)) if rng.random() < p else 0.0

        curved = rng.random() < 0.45
        return SceneParams(
            camera_height_m=float(rng.uniform(1.2, 1.8)),
            pitch_deg=float(rng.uniform(-3.0, 3.0)),
            hfov_deg=float(rng.uniform(60.0, 100.0)),
            condition=condition,
            yaw_deg=float(rng.uniform(-1.5, 1.5)),
            curvature_per_m=float(rng.uniform(-1 / 220, 1 / 220)) if curved else 0.0,
            lane_width_m=float(rng.uniform(3.0, 3.8)),
            lanes_forward=nf,
            lanes_backward=nb,
            ego_lane=int(rng.integers(0, nf)),
            lateral_offset_m=float(rng.uniform(-0.35, 0.35)),
            parking_left=bool(nb > 0 and rng.random() < 0.35),
            parking_right=bool(rng.random() < 0.5),
            kerb_height_m=float(rng.uniform(0.1, 0.18)),
            sidewalk_left_m=sidewalk(style_l),
            sidewalk_right_m=sidewalk(style_r),
            verge_left_m=verge(style_l),
            verge_right_m=verge(style_r),
            style_left=style_l,
            style_right=style_r,
            centre_line=_choose(rng, ("dashed", "solid", "double")),
            yellow_centre=bool(rng.random() < 0.3),
            speed_mps=float(rng.uniform(5.0, 14.0)),
            traffic_density=float(rng.uniform(0.25, 1.0)),
            pedestrian_density=float(rng.uniform(0.15, 1.0)),
            sun_elevation_deg=float(rng.uniform(15.0, 65.0)),
            sun_azimuth_deg=float(rng.uniform(-180.0, 180.0)),
            overcast=bool(rng.random() < 0.3),
            look_seed=int(rng.integers(0, 2**31)),
        )


@dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """One rendered frame with its Cityscapes ground truth."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes label ids
    instance_ids: np.ndarray  # (H, W) uint16 Cityscapes instanceIds
    condition: str
    index: int
    params: SceneParams | None = None

    @property
    def train_ids(self) -> np.ndarray:
        """(H, W) uint8 train ids via the label set (255 = ignore)."""
        return _label_to_train()[self.label_ids]

    @property
    def instances(self) -> dict[int, int]:
        """Instance id -> visible pixel count, for thing instances only."""
        ids, counts = np.unique(self.instance_ids[self.instance_ids >= 1000], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


# --------------------------------------------------------------------------------------
# camera


class _Camera:
    """Pinhole camera at lateral ``cam_x`` and height ``h`` above the road, in road coordinates.

    Road coordinates: x to the right of the road's reference (centre) line, y up, z forward
    along the road relative to the camera; the road bends by ``0.5 * curv * z**2``.
    """

    def __init__(self, p: SceneParams, width: int, height: int, cam_x: float, pitch_deg: float, yaw_deg: float):
        self.W, self.H = width, height
        self.fx = self.fy = (width / 2.0) / math.tan(math.radians(p.hfov_deg) / 2.0)
        self.cx, self.cy = (width - 1) / 2.0, (height - 1) / 2.0
        self.h = p.camera_height_m
        self.cam_x = cam_x
        self.curv = p.curvature_per_m
        self.pitch = math.radians(pitch_deg)
        self.yaw = math.radians(yaw_deg)
        self.cp, self.sp = math.cos(self.pitch), math.sin(self.pitch)
        self.cyw, self.syw = math.cos(self.yaw), math.sin(self.yaw)
        self.horizon = self.cy - self.fy * math.tan(self.pitch)
        self.pos = np.array([cam_x, self.h, 0.0])

    def to_cam(self, V: np.ndarray) -> np.ndarray:
        """(N, 3) road coordinates -> (N, 3) camera coordinates (x right, y down, z forward)."""
        z = V[:, 2]
        xb = V[:, 0] + 0.5 * self.curv * z * z - self.cam_x
        yb = V[:, 1] - self.h
        xr = self.cyw * xb - self.syw * z
        zr = self.syw * xb + self.cyw * z
        out = np.empty_like(V)
        out[:, 0] = xr
        out[:, 1] = -yb * self.cp - zr * self.sp
        out[:, 2] = -yb * self.sp + zr * self.cp
        return out

    def bend(self, z: float) -> float:
        return 0.5 * self.curv * z * z


def _encode_depth(z: np.ndarray) -> np.ndarray:
    return np.clip(np.log1p(np.maximum(z, 0.0)) * (254.0 / _LOG_ZMAX), 0, 254).astype(np.uint8)


# --------------------------------------------------------------------------------------
# object registry: every drawn primitive writes an object index; LUTs turn it into labels


class _Registry:
    """Object groups: every drawn polygon belongs to a group giving its label, instance id,
    night-time emission and texture class. Pixels store per-polygon object ids that map to
    groups (and to colours and depths) through lookup tables."""

    def __init__(self) -> None:
        self.label: list[int] = [UNLABELED]
        self.inst: list[int] = [0]
        self.emit: list[tuple[int, int, int]] = [(0, 0, 0)]
        self.tex: list[int] = [_TX_FLAT]

    def new(self, label: int, inst: int = 0, emit=(0, 0, 0), tex: int = _TX_FLAT) -> int:
        self.label.append(label)
        self.inst.append(inst if inst else label)
        self.emit.append(tuple(int(c) for c in emit))
        self.tex.append(tex)
        return len(self.label) - 1


class _Light:
    """Directional sun + sky shading for faces."""

    def __init__(self, p: SceneParams):
        el, az = math.radians(p.sun_elevation_deg), math.radians(p.sun_azimuth_deg)
        self.sun = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        self.amb, self.dif = (0.78, 0.2) if p.overcast else (0.62, 0.45)

    def shade(self, n: np.ndarray) -> np.ndarray:
        """Brightness factors for unit normals (..., 3)."""
        d = np.clip(n @ self.sun, 0.0, 1.0)
        return self.amb + self.dif * d + 0.08 * n[..., 1]


def _mul(col, f: float) -> tuple[int, int, int]:
    return (min(255, int(col[0] * f)), min(255, int(col[1] * f)), min(255, int(col[2] * f)))


def _jit(rng: np.random.Generator, col, amount: float = 0.08) -> tuple[int, int, int]:
    u0, u1, u2, u3 = rng.random(4).tolist()
    g = 1.0 + amount * (2.0 * u3 - 1.0)
    a = 2.0 * amount / 3.0
    k = g - amount / 3.0
    r, gg, b = col[0] * (k + a * u0), col[1] * (k + a * u1), col[2] * (k + a * u2)
    return (
        0 if r < 0 else 255 if r > 255 else int(r),
        0 if gg < 0 else 255 if gg > 255 else int(gg),
        0 if b < 0 else 255 if b > 255 else int(b),
    )


# faces of a solid given as 8 vertices (bottom quad 0-3, top quad 4-7):
# bottom, top, side 0-1, side 1-2, side 2-3, side 3-0
_FACES = np.array([[3, 2, 1, 0], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
_X1, _X2 = [1, 2, 0], [2, 0, 1]


def _solid(lo, hi, cam_pos, light: _Light, cols, obj: int, out: list) -> np.ndarray:
    """A convex solid between two quads (bottom ``lo`` and top ``hi``, (4, 3) each).

    Appends its camera-facing faces to ``out``; ``cols`` is one colour or six (bottom, top,
    side 0-1, side 1-2, side 2-3, side 3-0; ``None`` = not drawn). Returns face visibility.
    """
    V8 = np.concatenate((np.asarray(lo, float), np.asarray(hi, float)))[None]
    return _solids(V8, [cols], [obj], cam_pos, light, out)[0]


def _local(xc: float, zc: float, phi: float, P) -> np.ndarray:
    """Local (a lateral, y up, l forward) points of an object at (xc, zc) heading phi -> road."""
    P = np.asarray(P, float)
    c, s = math.cos(phi), math.sin(phi)
    out = np.empty_like(P)
    out[..., 0] = xc + P[..., 0] * c + P[..., 2] * s
    out[..., 1] = P[..., 1]
    out[..., 2] = zc - P[..., 0] * s + P[..., 2] * c
    return out


def _solids(V8: np.ndarray, cols: list, objs: list, cam_pos, light: _Light, out: list) -> np.ndarray:
    """Batch of convex solids (S, 8, 3): bottom quad then top quad each; see :func:`_solid`.

    Appends the camera-facing faces, solid by solid, and returns the (S, 6) face visibility.
    """
    F = V8[:, _FACES]
    e1 = F[:, :, 2] - F[:, :, 0]
    e2 = F[:, :, 3] - F[:, :, 1]
    n = e1[..., _X1] * e2[..., _X2] - e1[..., _X2] * e2[..., _X1]
    c = F.sum(axis=2) * 0.25
    sgn = ((c - V8.mean(axis=1)[:, None, :]) * n).sum(axis=-1)
    n[sgn < 0] *= -1.0
    vis = ((cam_pos - c) * n).sum(axis=-1) > 1e-9
    si, fi = np.nonzero(vis)
    if len(si):
        nv = n[si, fi]
        nv /= np.sqrt((nv * nv).sum(axis=1))[:, None] + 1e-12
        shade = light.shade(nv).tolist()
        for a, b, sh in zip(si.tolist(), fi.tolist(), shade):
            col = cols[a]
            if isinstance(col, list):
                col = col[b]
            if col is not None:
                out.append((F[a, b], _mul(col, sh), objs[a], 0.0))
    return vis


def _inset(q: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """Sub-quad of quad ``q`` (corners p0 p1 p2 p3, p0->p1 = u, p0->p3 = v) by bilinear coordinates."""
    p0, p1, p2, p3 = q

    def at(u, v):
        return (1 - u) * (1 - v) * p0 + u * (1 - v) * p1 + u * v * p2 + (1 - u) * v * p3

    return np.array([at(u0, v0), at(u1, v0), at(u1, 1 - v1), at(u0, 1 - v1)])


def _box8(a0, a1, y0, y1, l0, l1) -> list:
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


def _box_local(a0, a1, y0, y1, l0, l1):
    lo = [[a0, y0, l0], [a1, y0, l0], [a1, y0, l1], [a0, y0, l1]]
    hi = [[a0, y1, l0], [a1, y1, l0], [a1, y1, l1], [a0, y1, l1]]
    return lo, hi


@functools.lru_cache(maxsize=64)
def _unit_circle(n: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False) + offset
    return np.cos(t), np.sin(t)


def _ring(n: int, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    c, s = _unit_circle(n)
    out = np.empty((n, 2))
    out[:, 0] = cu + ru * c
    out[:, 1] = cv + rv * s
    return out


def _seg2(p0, p1, w0: float, w1: float | None = None) -> np.ndarray:
    """A limb: quad around the 2-D segment p0 -> p1 with widths w0 (at p0) and w1 (at p1)."""
    w1 = w0 if w1 is None else w1
    d = np.subtract(p1, p0, dtype=float)
    n = np.array([-d[1], d[0]]) / (math.hypot(d[0], d[1]) + 1e-9)
    return np.array([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])


def _plane(pos, e, P2) -> np.ndarray:
    """2-D points (u, y) in the vertical plane through ``pos`` spanned by unit ``e`` (xz) and up."""
    P2 = np.asarray(P2, float)
    out = np.empty((len(P2), 3))
    out[:, 0] = pos[0] + P2[:, 0] * e[0]
    out[:, 1] = pos[1] + P2[:, 1]
    out[:, 2] = pos[2] + P2[:, 0] * e[1]
    return out


def _flush2d(P: list, pos, e, Q: list, obj: int) -> None:
    """Append 2-D polygons ``Q`` [(pts, colour)] drawn in a vertical plane (see :func:`_plane`)."""
    if not Q:
        return
    V = _plane(pos, e, np.concatenate([q for q, _ in Q]))
    o = 0
    for q, c in Q:
        P.append((V[o : o + len(q)], c, obj, 0.0))
        o += len(q)


def _facing(cam: _Camera, x: float, z: float) -> tuple[float, float]:
    """Unit xz vector perpendicular to the viewing direction (billboards face the camera)."""
    dx, dz = x + cam.bend(z) - cam.cam_x, max(z, 0.5)
    n = math.hypot(dx, dz)
    return (dz / n, -dx / n)


# --------------------------------------------------------------------------------------
# palettes

_CAR_COLOURS = [
    ((232, 232, 230), 5),
    ((188, 190, 194), 5),
    ((120, 123, 128), 4),
    ((28, 29, 33), 5),
    ((145, 22, 26), 2),
    ((28, 52, 120), 2),
    ((22, 70, 42), 1),
    ((196, 178, 140), 1),
    ((225, 185, 30), 0.5),
    ((92, 44, 22), 0.6),
    ((72, 104, 142), 1),
    ((200, 90, 30), 0.4),
]
_BUILDING_COLOURS = [
    (205, 192, 170),
    (222, 216, 204),
    (170, 150, 128),
    (152, 82, 62),
    (182, 172, 160),
    (122, 122, 128),
    (212, 200, 158),
    (160, 172, 184),
    (236, 226, 202),
    (190, 140, 110),
    (110, 118, 132),
    (200, 205, 210),
]
_CLOTHES = [
    (30, 30, 36),
    (60, 62, 70),
    (20, 40, 90),
    (120, 20, 30),
    (200, 200, 200),
    (90, 70, 50),
    (40, 90, 60),
    (150, 120, 90),
    (210, 170, 40),
    (70, 110, 170),
    (180, 60, 90),
    (235, 235, 235),
]
_SKIN = [(236, 198, 168), (210, 160, 122), (160, 110, 76), (100, 66, 46), (228, 184, 150)]
_HAIR = [(30, 22, 18), (60, 40, 25), (120, 90, 50), (190, 160, 110), (90, 90, 90)]


def _choose(rng: np.random.Generator, options, weights=None):
    """One of ``options`` (optionally weighted); a single uniform draw (rng.choice is slow)."""
    if weights is None:
        return options[int(rng.random() * len(options))]
    r = rng.random() * sum(weights)
    acc = 0.0
    for opt, w in zip(options, weights):
        acc += w
        if r < acc:
            return opt
    return options[-1]


def _pick(rng: np.random.Generator, weighted):
    return _choose(rng, [c for c, _ in weighted], [w for _, w in weighted])


# --------------------------------------------------------------------------------------
# road layout


class _Side:
    """One side of the road: kerb at ``edge`` (signed x), ground bands outwards, building line."""

    def __init__(self, sign: int, edge: float, sidewalk: float, verge: float, style: str, rng):
        self.sign, self.edge, self.style = sign, edge, style
        bands: list[tuple[float, str]] = []
        if verge > 0 and style != "urban" and rng.random() < 0.6:
            bands = [(verge, "terrain"), (verge + sidewalk, "sidewalk")]
            self.tree_off = verge * 0.5
            self.lamp_off = verge * 0.5
        elif verge > 0:
            bands = [(sidewalk, "sidewalk"), (sidewalk + verge, "terrain")]
            self.tree_off = sidewalk + verge * 0.5
            self.lamp_off = 0.45
        else:
            bands = [(sidewalk, "sidewalk")]
            self.tree_off = 0.9 if sidewalk > 2.6 else None
            self.lamp_off = 0.45
        self.bands = bands
        start = 0.0
        for end, kind in bands:
            if kind == "sidewalk":
                self.sidewalk_span = (start, end)
            start = end
        self.beyond = "sidewalk" if style == "urban" else "terrain"
        self.width = bands[-1][0]
        self.line = self.width + (float(rng.uniform(0.0, 1.5)) if style == "urban" else float(rng.uniform(1.0, 6.0)))

    def x(self, off: float) -> float:
        """Signed road x of a point ``off`` metres beyond the kerb."""
        return self.edge + self.sign * off


class _Layout:
    def __init__(self, p: SceneParams, rng: np.random.Generator):
        lw = p.lane_width_m
        self.lw, self.nf, self.nb = lw, p.lanes_forward, p.lanes_backward
        self.lanes_right = self.nf * lw  # x of the outer forward lane boundary
        self.lanes_left = -self.nb * lw
        self.park_r = 2.3 if p.parking_right else 0.0
        self.park_l = 2.3 if p.parking_left else 0.0
        self.xR = self.lanes_right + (self.park_r or 0.35)
        self.xL = self.lanes_left - (self.park_l or 0.35)
        self.ego_x = (p.ego_lane + 0.5) * lw + p.lateral_offset_m
        self.right = _Side(+1, self.xR, p.sidewalk_right_m, p.verge_right_m, p.style_right, rng)
        self.left = _Side(-1, self.xL, p.sidewalk_left_m, p.verge_left_m, p.style_left, rng)
        # line type per lane boundary j (x = j * lw), j = -nb..nf:
        # 0 none, 1 dashed white, 2 solid white, 3 solid yellow, 4 double yellow, 5 dashed yellow,
        # 6 double white
        types = []
        for j in range(-self.nb, self.nf + 1):
            if j == 0 and self.nb > 0:
                t = {"dashed": 1, "solid": 2, "double": 6}[p.centre_line]
                if p.yellow_centre:
                    t = {1: 5, 2: 3, 6: 4}[t]
            elif j in (-self.nb, self.nf):
                t = 2
            else:
                t = 1
            types.append(t)
        self.line_types = np.array(types, np.int8)
        self.dash_period = float(rng.uniform(9.0, 13.0))
        self.dash_len = float(rng.uniform(2.5, 4.0))
        self.dash_phase = float(rng.uniform(0, 20))


# --------------------------------------------------------------------------------------
# agents (things that move and carry instance ids)


class _Agent:
    __slots__ = ("k", "k2", "kind", "lane", "look", "phase", "phi", "s", "speed", "turn_at", "x")

    def __init__(self, kind: str, x: float, s: float, phi: float, speed: float, look: dict, lane=None):
        self.kind, self.x, self.s, self.phi, self.speed, self.look = kind, x, s, phi, speed, look
        self.k = 0
        self.k2 = 0
        self.lane = lane
        self.phase = float(look.get("phase0", 0.0))
        self.turn_at = None

    @property
    def half_len(self) -> float:
        return self.look.get("L", 0.6) / 2.0

    @property
    def label(self) -> int:
        return {"car": CAR, "truck": TRUCK, "bus": BUS, "person": PERSON, "bicycle": BICYCLE, "motorcycle": MOTORCYCLE}[
            self.kind
        ]


def _vehicle_look(rng: np.random.Generator, kind: str) -> dict:
    if kind == "car":
        variant = ("sedan", "hatch", "suv", "van", "sedan", "hatch")[int(rng.integers(6))]
        ranges = {
            "sedan": ((4.3, 4.9), (1.74, 1.86), (1.40, 1.50), (0.82, 0.92), (0.7, 1.0), (1.1, 1.35)),
            "hatch": ((3.7, 4.3), (1.68, 1.8), (1.45, 1.56), (0.85, 0.95), (0.12, 0.25), (0.9, 1.1)),
            "suv": ((4.4, 4.9), (1.84, 1.96), (1.65, 1.8), (0.98, 1.08), (0.12, 0.22), (1.0, 1.2)),
            "van": ((4.8, 5.4), (1.9, 2.0), (1.9, 2.15), (1.0, 1.1), (0.05, 0.12), (0.6, 0.8)),
        }[variant]
        u = rng.random(6)
        L, W, H, hb, trunk, hood = (lo + (hi - lo) * v for (lo, hi), v in zip(ranges, u))
        return dict(
            L=float(L),
            W=float(W),
            H=float(H),
            hb=float(hb),
            trunk=float(trunk),
            hood=float(hood),
            variant=variant,
            col=_jit(rng, _pick(rng, _CAR_COLOURS), 0.05),
            r=0.31 if variant != "suv" else 0.36,
            glass=_jit(rng, (38, 46, 56), 0.15),
        )
    if kind == "truck":
        return dict(
            L=float(rng.uniform(6.5, 9.5)),
            W=float(rng.uniform(2.3, 2.5)),
            H=float(rng.uniform(3.0, 3.7)),
            Hc=float(rng.uniform(2.6, 3.0)),
            col=_jit(rng, _pick(rng, _CAR_COLOURS[:8]), 0.06),
            cargo=_jit(
                rng,
                [(230, 230, 228), (200, 200, 196), (150, 30, 30), (40, 70, 130), (210, 170, 40), (90, 110, 90)][
                    int(rng.integers(6))
                ],
                0.06,
            ),
            r=0.5,
            glass=(40, 48, 58),
        )
    if kind == "bus":
        return dict(
            L=float(rng.uniform(10.5, 12.5)),
            W=2.55,
            H=float(rng.uniform(3.0, 3.3)),
            col=_jit(
                rng,
                [(235, 200, 40), (230, 230, 228), (190, 30, 35), (40, 80, 160), (60, 140, 80)][int(rng.integers(5))],
                0.05,
            ),
            r=0.5,
            glass=(34, 42, 52),
        )
    raise ValueError(kind)


def _jit_u(col, amount: float, u) -> tuple[int, int, int]:
    """Colour jitter from four pre-drawn uniforms (see :func:`_jit`)."""
    g = 1.0 + amount * (2.0 * u[3] - 1.0) - amount / 3.0
    a = 2.0 * amount / 3.0
    return tuple(max(0, min(255, int(col[i] * (g + a * u[i])))) for i in range(3))


def _person_look(rng: np.random.Generator, child: bool = False) -> dict:
    u = rng.random(32).tolist()
    h = 1.05 + 0.35 * u[0] if child else 1.56 + 0.36 * (u[0] + u[1]) / 2.0
    n = len(_CLOTHES)
    return dict(
        H=h,
        skin=_jit_u(_SKIN[int(u[2] * len(_SKIN))], 0.05, u[8:12]),
        hair=_jit_u(_HAIR[int(u[3] * len(_HAIR))], 0.1, u[12:16]),
        top=_jit_u(_CLOTHES[int(u[4] * n)], 0.12, u[16:20]),
        legs=_jit_u(_CLOTHES[int(u[5] * 6)], 0.12, u[20:24]),
        shoes=_jit_u((35, 30, 30), 0.3, u[24:28]),
        coat=u[6] < 0.25,
        bag=u[7] < 0.3,
        bagcol=_jit_u(_CLOTHES[int(u[28] * n)], 0.1, u[28:32]),
        phase0=2 * math.pi * u[1],
        L=0.5,
    )


def _twowheeler_look(rng: np.random.Generator, kind: str) -> dict:
    look = _person_look(rng)
    look.update(
        L=1.75 if kind == "bicycle" else 2.1,
        frame=_jit(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 0.1),
        helmet=_jit(rng, [(30, 30, 30), (220, 220, 220), (180, 30, 30), (30, 60, 140)][int(rng.integers(4))], 0.1),
        wears_helmet=bool(kind == "motorcycle" or rng.random() < 0.5),
    )
    return look


# --------------------------------------------------------------------------------------
# the scene: layout, static world in chunks, agents


class _Scene:
    def __init__(self, params: SceneParams, static_key: tuple[int, ...], agent_rng: np.random.Generator):
        self.p = params
        look = _rng(params.look_seed, _T_SCENE)
        self.lay = _Layout(params, look)
        self.static_key = static_key
        self.chunks: dict[int, list] = {}
        self.agents: list[_Agent] = []
        self.agent_rng = agent_rng
        self.spawned: set[int] = set()
        self.drive = False
        self.used_k: dict[int, set[int]] = {}
        self.light = _Light(params)
        # appearance
        g = float(look.uniform(72, 118))
        tint = look.uniform(-3, 3, 3)
        self.asphalt = tuple(int(v) for v in np.clip(g + tint, 0, 255))
        sw = [(175, 172, 166), (160, 158, 155), (190, 182, 164), (168, 128, 114), (140, 142, 146)]
        self.sidewalk_col = {s: _jit(look, sw[int(look.integers(len(sw)))], 0.06) for s in (-1, 1)}
        self.kerb_col = _jit(look, (182, 180, 174), 0.05)
        self.terrain_col = _jit(
            look, [(104, 138, 66), (120, 146, 72), (138, 140, 84), (90, 124, 58)][int(look.integers(4))], 0.07
        )
        self.marking_white = _jit(look, (225, 225, 220), 0.04)
        self.marking_yellow = _jit(look, (226, 176, 40), 0.05)
        if params.overcast:
            self.sky = (_jit(look, (208, 210, 214), 0.04), _jit(look, (150, 158, 170), 0.06))
        else:
            self.sky = (_jit(look, (200, 218, 238), 0.04), _jit(look, (62, 120, 196), 0.08))
        self.cloudiness = float(look.uniform(0.0, 1.0))
        self.backdrop = self._make_backdrop(look)
        self.lamp_spacing = {s: float(look.uniform(22, 36)) for s in (-1, 1)}
        self.lamp_phase = {s: float(look.uniform(0, 36)) for s in (-1, 1)}
        self.lamp_on = {
            s: bool(look.random() < (0.85 if (self.lay.right if s > 0 else self.lay.left).style != "green" else 0.45))
            for s in (-1, 1)
        }
        self.lamp_col = _jit(look, [(70, 74, 78), (120, 124, 128), (40, 60, 50)][int(look.integers(3))], 0.05)

    # ---- instance numbers: smallest free k per class, stable while the agent lives
    def _take_k(self, label: int) -> int:
        used = self.used_k.setdefault(label, set())
        k = 1
        while k in used:
            k += 1
        used.add(k)
        return k

    def add_agent(self, ag: _Agent) -> None:
        ag.k = self._take_k(ag.label)
        if ag.kind in ("bicycle", "motorcycle"):
            ag.k2 = self._take_k(RIDER)
        self.agents.append(ag)

    def remove_agent(self, ag: _Agent) -> None:
        self.used_k[ag.label].discard(ag.k)
        if ag.k2:
            self.used_k[RIDER].discard(ag.k2)

    def side(self, sign: int) -> _Side:
        return self.lay.right if sign > 0 else self.lay.left

    # ---- backdrop: far skyline / treeline in camera-relative coordinates
    def _make_backdrop(self, rng) -> list:
        items = []
        urban = sum(s.style == "urban" for s in (self.lay.left, self.lay.right))
        p_build = (0.15, 0.45, 0.7)[urban]
        for dist in (420.0, 620.0):
            x = -dist * 2.0
            while x < dist * 2.0:
                w = float(rng.uniform(15, 70))
                r = rng.random()
                if r < p_build:
                    items.append(
                        (
                            "block",
                            dist + float(rng.uniform(-40, 40)),
                            x,
                            x + w,
                            float(rng.uniform(10, 55 if dist < 500 else 80)),
                            _jit(rng, (150, 155, 165), 0.12),
                        )
                    )
                elif r < p_build + 0.45:
                    n = max(3, int(w / 6))
                    tops = rng.uniform(8, 22, n)
                    items.append(
                        ("trees", dist + float(rng.uniform(-40, 40)), x, x + w, tops, _jit(rng, (64, 88, 58), 0.15))
                    )
                x += w * float(rng.uniform(0.7, 1.05))
        return items

    # ---- static world
    def chunk(self, c: int) -> list:
        if c not in self.chunks:
            self.chunks[c] = self._gen_chunk(c)
        return self.chunks[c]

    def _gen_chunk(self, c: int) -> list:
        rng = _rng(*self.static_key, _T_STATIC, c + (1 << 20))
        s0, s1 = c * _CHUNK, (c + 1) * _CHUNK
        out: list = []
        cw = None
        if rng.random() < 0.3:
            cw = (float(rng.uniform(s0 + 8, s1 - 12)), float(rng.uniform(3.0, 4.5)))
            out.append(("crosswalk", cw[0], cw[1]))
        for sign in (-1, 1):
            side = self.side(sign)
            self._gen_building_line(rng, side, s0, s1, out)
            # street lamps at a regular spacing along the road
            sp, ph = self.lamp_spacing[sign], self.lamp_phase[sign]
            if self.lamp_on[sign]:
                n0 = math.ceil((s0 - ph) / sp)
                while ph + n0 * sp < s1:
                    out.append(("lamp", sign, ph + n0 * sp, side.lamp_off, float(rng.uniform(7.0, 9.0))))
                    n0 += 1
            # trees
            if side.tree_off is not None and (side.style != "urban" or rng.random() < 0.6):
                s = s0 + float(rng.uniform(0, 8))
                spacing = float(rng.uniform(7, 14))
                while s < s1:
                    if cw is None or abs(s - cw[0]) > 5:
                        out.append(
                            ("tree", sign, s, side.tree_off + float(rng.uniform(-0.2, 0.2)), self._tree_look(rng))
                        )
                    s += spacing * float(rng.uniform(0.8, 1.25))
            # traffic signs
            for _ in range(int(rng.poisson(0.9 if sign > 0 else 0.5))):
                out.append(
                    (
                        "sign",
                        sign,
                        float(rng.uniform(s0, s1)),
                        side.lamp_off + float(rng.uniform(-0.15, 0.3)),
                        self._sign_look(rng, sign),
                    )
                )
            if cw is not None:
                out.append(
                    (
                        "tlight",
                        sign,
                        cw[0] - 1.0 if sign > 0 else cw[0] + cw[1] + 1.0,
                        side.lamp_off,
                        self._tlight_look(rng, sign),
                    )
                )
        return out

    def _tree_look(self, rng) -> dict:
        u = rng.random(8)
        R = 1.3 + 1.9 * u[1]
        n = 6 + int(u[3] * 5)
        green = np.array([40 + 45 * u[4], 78 + 47 * u[5], 22 + 28 * u[6]])
        B = rng.random((n, 4))
        dy = (B[:, 1] * 1.45 - 0.7) * R
        order = np.argsort(dy, kind="stable")
        shade = 0.72 + 0.45 * (dy / R + 0.7) / 1.45 + (B[:, 3] * 0.16 - 0.08)
        cols = np.minimum(green[None, :] * shade[:, None], 255.0).astype(int)
        blobs = [
            ((B[i, 0] * 1.5 - 0.75) * R, dy[i], (0.42 + 0.28 * B[i, 2]) * R, tuple(cols[i].tolist())) for i in order
        ]
        return dict(
            conifer=bool(u[0] < 0.15),
            R=R,
            base=1.8 + 1.4 * u[2],
            blobs=blobs,
            trunk_w=0.22 + 0.18 * u[7],
            trunk=_jit(rng, (86, 66, 48), 0.15),
            green=tuple(int(v) for v in green),
        )

    def _sign_look(self, rng, sign) -> dict:
        kind = _choose(rng, ("round_red", "round_blue", "triangle", "rect_blue", "stop", "diamond", "rect_white"))
        return dict(
            kind=kind,
            h=float(rng.uniform(2.0, 2.8)),
            size=float(rng.uniform(0.55, 0.85)),
            back=sign < 0,
            extra=bool(rng.random() < 0.25),
        )

    def _tlight_look(self, rng, sign) -> dict:
        return dict(
            overhead=bool(sign > 0 and rng.random() < 0.45),
            state=int(rng.integers(3)),
            h=float(rng.uniform(3.2, 4.0)),
            back=sign < 0,
        )

    def _gen_building_line(self, rng, side: _Side, s0: float, s1: float, out: list) -> None:
        style = side.style
        kinds, probs = {
            "urban": (["building", "gap", "wall", "fence", "hedge"], [0.78, 0.08, 0.06, 0.04, 0.04]),
            "suburban": (["building", "gap", "wall", "fence", "hedge", "trees"], [0.4, 0.1, 0.1, 0.14, 0.14, 0.12]),
            "green": (["building", "gap", "fence", "hedge", "trees"], [0.1, 0.15, 0.15, 0.2, 0.4]),
        }[style]
        s = s0
        while s < s1:
            kind = _choose(rng, kinds, probs)
            if kind == "building":
                length = float(rng.uniform(9, 32))
            else:
                length = float(rng.uniform(6, 24))
            e = min(s + length, s1)
            off = side.line + (float(rng.uniform(0, 1.2)) if style == "urban" else float(rng.uniform(0, 3)))
            if kind == "building":
                out.append(("building", side.sign, s, e, off, self._building_look(rng, style, e - s)))
            elif kind == "wall":
                out.append(
                    (
                        "wall",
                        side.sign,
                        s,
                        e,
                        off - float(rng.uniform(0, 0.5)),
                        float(rng.uniform(1.0, 2.6)),
                        _jit(
                            rng,
                            [(170, 168, 160), (150, 90, 70), (200, 196, 186), (120, 120, 118)][int(rng.integers(4))],
                            0.08,
                        ),
                    )
                )
            elif kind == "fence":
                out.append(
                    (
                        "fence",
                        side.sign,
                        s,
                        e,
                        min(off, side.width + 0.2),
                        float(rng.uniform(1.0, 1.9)),
                        _jit(
                            rng,
                            [(60, 64, 68), (120, 100, 70), (150, 150, 150), (40, 70, 50)][int(rng.integers(4))],
                            0.1,
                        ),
                        _choose(rng, ("bars", "boards")),
                    )
                )
            elif kind == "hedge":
                out.append(
                    (
                        "hedge",
                        side.sign,
                        s,
                        e,
                        min(off, side.width + 0.3),
                        float(rng.uniform(0.9, 1.9)),
                        float(rng.uniform(0.7, 1.3)),
                        _jit(rng, (58, 92, 40), 0.12),
                    )
                )
            elif kind == "trees":
                t = s + float(rng.uniform(1, 4))
                while t < e:
                    out.append(("tree", side.sign, t, off + float(rng.uniform(0, 6)), self._tree_look(rng)))
                    t += float(rng.uniform(3, 8))
            # "gap": nothing on the building line; the ground and backdrop show through
            if kind != "building" and kind != "trees" and rng.random() < 0.5:
                # trees or buildings set back further behind low structures
                if rng.random() < 0.5:
                    out.append(
                        (
                            "building",
                            side.sign,
                            s,
                            e,
                            off + float(rng.uniform(5, 15)),
                            self._building_look(rng, style, e - s),
                        )
                    )
                else:
                    t = s + float(rng.uniform(1, 4))
                    while t < e:
                        out.append(("tree", side.sign, t, off + float(rng.uniform(2, 8)), self._tree_look(rng)))
                        t += float(rng.uniform(3, 7))
            s = e

    def _building_look(self, rng, style: str, length: float) -> dict:
        fh = float(rng.uniform(3.0, 3.6))
        if style == "urban":
            floors = int(rng.integers(2, 9))
        else:
            floors = int(rng.integers(1, 4))
        H = floors * fh + float(rng.uniform(0.6, 2.0))
        glass = rng.random() < 0.15 and floors > 3
        col = _jit(
            rng, (150, 170, 185) if glass else _BUILDING_COLOURS[int(rng.integers(len(_BUILDING_COLOURS)))], 0.07
        )
        ww = float(rng.uniform(1.0, 1.6))
        spacing = float(rng.uniform(max(ww + 0.6, 2.0), 3.6)) if not glass else ww + 0.25
        wh = float(rng.uniform(1.2, 1.8)) if not glass else fh - 0.7
        ncol = max(1, int((length - 1.0) / spacing))
        lit = rng.random((floors, ncol)) < float(rng.uniform(0.08, 0.35))
        return dict(
            H=H,
            fh=fh,
            floors=floors,
            col=col,
            depth=float(rng.uniform(8, 20)),
            ww=ww,
            wh=wh,
            spacing=spacing,
            ncol=ncol,
            lit=lit,
            glass=_jit(rng, (48, 62, 78) if not glass else (70, 96, 120), 0.15),
            frame=_mul(col, 0.8),
            cornice=_mul(col, float(rng.uniform(0.6, 0.85))),
            shop=bool(rng.random() < 0.5 and style == "urban"),
            shopcol=_jit(rng, _CLOTHES[int(rng.integers(len(_CLOTHES)))], 0.1),
        )

    # ---- agents spawned with a chunk (traffic, parked cars, pedestrians, cyclists)
    def spawn_chunk_agents(self, c: int, cam_s: float, rng: np.random.Generator, initial: bool) -> None:
        if c in self.spawned:
            return
        self.spawned.add(c)
        p, lay = self.p, self.lay
        s0, s1 = c * _CHUNK, (c + 1) * _CHUNK
        statics = self.chunk(c)
        cws = [(d[1], d[2]) for d in statics if d[0] == "crosswalk"]
        # moving traffic in each lane
        mean_gap = 10.0 + 45.0 * (1.0 - p.traffic_density)
        for lane in range(-lay.nb, lay.nf):
            forward = lane >= 0
            x = (lane + 0.5) * lay.lw
            s = s0 + float(rng.exponential(mean_gap))
            while s < s1:
                kind = _choose(rng, ("car", "truck", "bus", "motorcycle", "bicycle"), (0.8, 0.07, 0.05, 0.05, 0.03))
                if kind == "bicycle" and (lane != lay.nf - 1 or lane == p.ego_lane):
                    kind = "car"
                if initial and lane == p.ego_lane and cam_s - 12 < s < cam_s + 9:
                    s += 10
                    continue
                speed = (
                    p.speed_mps * float(rng.uniform(1.0, 1.25))
                    if lane == p.ego_lane
                    else float(rng.uniform(0.6, 1.3)) * p.speed_mps
                )
                if kind == "bicycle":
                    speed = float(rng.uniform(3.5, 6.5))
                    x_ag = lay.lanes_right - 0.8
                else:
                    x_ag = x + float(rng.uniform(-0.25, 0.25))
                look = _twowheeler_look(rng, kind) if kind in ("motorcycle", "bicycle") else _vehicle_look(rng, kind)
                ag = _Agent(kind, x_ag, s, 0.0 if forward else math.pi, speed, look, lane=lane)
                if not self._overlaps(ag):
                    self.add_agent(ag)
                s += ag.half_len * 2 + float(rng.exponential(mean_gap)) + 2.0
        # parked cars
        for sign, width in ((1, lay.park_r), (-1, lay.park_l)):
            if width <= 0:
                continue
            x = (lay.lanes_right + 1.15) if sign > 0 else (lay.lanes_left - 1.15)
            s = s0 + float(rng.uniform(0, 6))
            occupancy = float(rng.uniform(0.4, 0.95))
            while s < s1:
                look = _vehicle_look(rng, "car" if rng.random() < 0.93 else "truck")
                L = look["L"]
                if rng.random() < occupancy and all(abs(s + L / 2 - cw0) > 6 for cw0, _ in cws):
                    ag = _Agent(
                        "car" if "variant" in look else "truck",
                        x + float(rng.uniform(-0.15, 0.15)),
                        s + L / 2,
                        0.0 if sign > 0 else math.pi,
                        0.0,
                        look,
                    )
                    if not self._overlaps(ag):
                        self.add_agent(ag)
                s += L + float(rng.uniform(0.8, 3.0))
        # pedestrians on the sidewalks
        for sign in (-1, 1):
            side = self.side(sign)
            dens = p.pedestrian_density * (1.0 if side.style == "urban" else 0.4)
            for _ in range(int(rng.poisson(7.0 * dens))):
                lo, hi = side.sidewalk_span
                off = float(rng.uniform(lo + 0.35, max(lo + 0.4, hi - 0.35)))
                s = float(rng.uniform(s0, s1))
                n_group = 1 if rng.random() < 0.75 else int(rng.integers(2, 4))
                walking = rng.random() < 0.8
                phi = 0.0 if rng.random() < 0.5 else math.pi
                speed = float(rng.uniform(1.0, 1.6)) if walking else 0.0
                for g in range(n_group):
                    look = _person_look(rng, child=bool(g > 0 and rng.random() < 0.35))
                    look["stand"] = not walking
                    ag = _Agent(
                        "person",
                        side.x(off + 0.55 * g * (1 if off < (lo + hi) / 2 else -1)),
                        s + float(rng.uniform(-0.3, 0.3)),
                        phi,
                        speed,
                        look,
                    )
                    self.add_agent(ag)
        # people and cyclists crossing at crosswalks (in a drive only where the crossing is over
        # before the camera gets there)
        for cw0, cww in cws:
            if self.drive and cw0 < cam_s + 70.0:
                continue
            for _ in range(int(rng.poisson(2.5 * p.pedestrian_density + 0.5))):
                x = float(rng.uniform(lay.xL - 1.0, lay.xR + 1.0))
                phi = math.pi / 2 if rng.random() < 0.5 else -math.pi / 2
                if rng.random() < 0.85:
                    ag = _Agent(
                        "person",
                        x,
                        cw0 + float(rng.uniform(0.4, cww - 0.4)),
                        phi,
                        float(rng.uniform(1.1, 1.7)),
                        _person_look(rng),
                    )
                else:
                    ag = _Agent(
                        "bicycle", x, cw0 + cww / 2, phi, float(rng.uniform(2.5, 4.5)), _twowheeler_look(rng, "bicycle")
                    )
                ag.turn_at = 1
                self.add_agent(ag)

    def _overlaps(self, ag: _Agent) -> bool:
        for o in self.agents:
            if o.kind == "person" or abs(o.x - ag.x) > 1.8:
                continue
            if abs(o.s - ag.s) < o.half_len + ag.half_len + 1.5:
                return True
        return False

    # ---- simulation step (drives)
    def step(self, dt: float, cam_s: float, ego_speed: float, rng: np.random.Generator) -> None:
        lay = self.lay
        # car following per lane
        by_lane: dict[int, list[_Agent]] = {}
        for ag in self.agents:
            if ag.lane is not None and ag.speed > 0:
                by_lane.setdefault(ag.lane, []).append(ag)
        ego = _Agent("car", lay.ego_x, cam_s - 1.0, 0.0, ego_speed, {"L": 4.6})
        for lane, ags in by_lane.items():
            forward = lane >= 0
            if lane == self.p.ego_lane:
                ags = ags + [ego]  # traffic behind the camera follows it
            ags.sort(key=lambda a: a.s, reverse=forward)
            leader = None
            for ag in ags:
                if leader is not None and ag is not ego:
                    gap = abs(leader.s - ag.s) - leader.half_len - ag.half_len
                    if gap < 6.0 + 0.6 * ag.speed:
                        ag.speed = min(ag.speed, leader.speed)
                    if leader is ego and gap < 3.0:
                        ag.speed = min(ag.speed, ego_speed * 0.9)
                leader = ag
        for ag in self.agents:
            d = ag.speed * dt
            ag.s += d * math.cos(ag.phi)
            ag.x += d * math.sin(ag.phi)
            if ag.kind == "person":
                ag.phase += d / (0.36 * ag.look["H"])
            if ag.turn_at is not None:
                # crossing people turn onto the sidewalk once they reach the far kerb
                if (ag.phi > 0 and ag.x > lay.xR + 1.0) or (ag.phi < 0 and ag.x < lay.xL - 1.0):
                    ag.phi = 0.0 if rng.random() < 0.5 else math.pi
                    ag.turn_at = None
                    if ag.kind == "bicycle":
                        ag.speed = 0.0
        # despawn what left the window
        keep = []
        for ag in self.agents:
            if cam_s - _BEHIND - 5 <= ag.s <= cam_s + _AHEAD + 30:
                keep.append(ag)
            else:
                self.remove_agent(ag)
        self.agents = keep
        # faster traffic arriving from behind in the non-ego forward lanes
        for lane in range(lay.nf):
            if lane == self.p.ego_lane:
                continue
            if rng.random() < dt * 0.08 * (0.5 + self.p.traffic_density):
                look = _vehicle_look(rng, "car")
                ag = _Agent(
                    "car",
                    (lane + 0.5) * lay.lw,
                    cam_s - 30.0,
                    0.0,
                    ego_speed + float(rng.uniform(2.5, 6.0)),
                    look,
                    lane=lane,
                )
                if not self._overlaps(ag):
                    self.add_agent(ag)

    def ensure_chunks(self, cam_s: float, initial: bool, agents_ahead: float = _AHEAD) -> None:
        c0 = math.floor((cam_s - _BEHIND) / _CHUNK)
        c1 = math.floor((cam_s + _AHEAD) / _CHUNK)
        for c in range(c0, c1 + 1):
            self.chunk(c)
            if c * _CHUNK < cam_s + agents_ahead:
                self.spawn_chunk_agents(c, cam_s, self.agent_rng, initial)
        for c in [c for c in self.chunks if c < c0 - 1]:
            del self.chunks[c]


# --------------------------------------------------------------------------------------
# building render items (road coordinates relative to the camera)


class _Item:
    """One object to paint: its polygons, a footprint rectangle (road x0, x1, z0, z1) for the
    visibility order, and its distance (tie-break: farther first). ``layer`` 0 is the backdrop."""

    __slots__ = ("dist", "layer", "polys", "rect")

    def __init__(self, layer: int, dist: float, rect: tuple[float, float, float, float]):
        self.layer, self.dist, self.rect = layer, dist, rect
        self.polys: list = []


def _paint_order(items: list[_Item], cam_x: float) -> list[_Item]:
    """Order items back to front.

    Footprints are disjoint rectangles on the ground seen from the camera at (cam_x, 0): A
    must be painted after B when an axis separates them with the camera on A's side, and
    only if their angular extents overlap (otherwise they cannot overlap in the image). The
    resulting partial order is resolved farthest-first (Kahn with a priority).
    """
    back = [it for it in items if it.layer == 0]
    back.sort(key=lambda it: -it.dist)
    rest = [it for it in items if it.layer != 0]
    n = len(rest)
    if n == 0:
        return back
    R = np.array([it.rect for it in rest], float)
    x0, x1, z0, z1 = R[:, 0] - cam_x, R[:, 1] - cam_x, R[:, 2], R[:, 3]
    dist = np.array([it.dist for it in rest])
    # angular extent (from the forward axis) of each footprint
    ang = np.arctan2(np.stack([x0, x1, x0, x1], 1), np.stack([z0, z0, z1, z1], 1))
    amin, amax = ang.min(1), ang.max(1)
    behind = z0 <= 0.05
    amin[behind], amax[behind] = -np.pi, np.pi
    overlap = (amin[:, None] < amax[None, :]) & (amin[None, :] < amax[:, None])
    X0, X1, Z0, Z1 = x0[:, None], x1[:, None], z0[:, None], z1[:, None]
    # F[a, b]: a is in front of b (a painted after b); the camera is at x = 0, z = 0
    F = (x0[None, :] >= X1) & (X1 >= 0)
    F |= (x1[None, :] <= X0) & (X0 <= 0)
    F |= (z0[None, :] >= Z1) & (Z1 >= 0)
    F |= (z1[None, :] <= Z0) & (Z0 <= 0)
    F &= overlap
    F &= ~F.T  # contradicting axes: the two cannot overlap in the image
    np.fill_diagonal(F, False)
    indeg = F.sum(axis=1)
    done = np.zeros(n, bool)
    order = []
    for _ in range(n):
        ready = (indeg == 0) & ~done
        cand = np.flatnonzero(ready) if ready.any() else np.flatnonzero(~done)
        i = int(cand[np.argmax(dist[cand])])
        order.append(i)
        done[i] = True
        indeg -= F[:, i]
    return back + [rest[i] for i in order]


def _pieces(z0: float, z1: float) -> list[float]:
    """Split [z0, z1] (camera-relative) into pieces ~25 % of their distance long."""
    zs = [z0]
    z = z0
    while z < z1:
        z = min(z1, z + max(1.5, 0.25 * max(z, 0.0)))
        zs.append(z)
    return zs


class _Builder:
    """Turns the scene around camera position ``cam_s`` into render items (3-D polygons in
    road coordinates relative to the camera), culling what is behind or outside the view and
    simplifying what is too small to show detail."""

    def __init__(self, scene: _Scene, cam: _Camera, cam_s: float, reg: _Registry, condition: str):
        self.sc, self.cam, self.cam_s, self.reg = scene, cam, cam_s, reg
        self.light = scene.light
        self.items: list[_Item] = []
        self.shadows: list[np.ndarray] = []  # ground quads (road coords) darkened under objects
        self.pools: list[tuple[float, float, float]] = []  # street lamp light pools (x, z, radius)
        self.night = condition in ("night", "dusk")
        self.tan_half = (cam.W / 2.0 + 2.0) / cam.fx

    def px(self, dist: float) -> float:
        """Pixels per metre at a distance."""
        return self.cam.fy / max(dist, 0.3)

    def dist(self, x: float, z: float) -> float:
        return math.hypot(x + self.cam.bend(z) - self.cam.cam_x, z)

    def in_view(self, x: float, z: float, r: float) -> bool:
        """Whether a vertical object of radius ``r`` at road (x, z) can be inside the horizontal FOV."""
        cam = self.cam
        xb = x + 0.5 * cam.curv * z * z - cam.cam_x
        xr = cam.cyw * xb - cam.syw * z
        zr = cam.syw * xb + cam.cyw * z
        return zr > -r and abs(xr) - r < zr * self.tan_half + r

    def in_view_arr(self, x: np.ndarray, z: np.ndarray, r: float) -> np.ndarray:
        cam = self.cam
        xb = x + 0.5 * cam.curv * z * z - cam.cam_x
        xr = cam.cyw * xb - cam.syw * z
        zr = cam.syw * xb + cam.cyw * z
        return (zr > -r) & (np.abs(xr) - r < zr * self.tan_half + r)

    # ---------------- backdrop
    def backdrop(self) -> None:
        cam = self.cam
        reg = self.reg
        ob = reg.new(BUILDING, tex=_TX_BUILDING)
        ov = reg.new(VEGETATION, tex=_TX_VEG)
        haze = np.array(self.sc.sky[0], float)
        for it in self.sc.backdrop:
            kind, d = it[0], it[1]
            item = _Item(0, d, (0.0, 0.0, d, d))
            shift = -cam.bend(d) + cam.cam_x
            if kind == "block":
                _, _, x0, x1, h, col = it
                col = tuple(int(v) for v in 0.45 * np.array(col) + 0.55 * haze)
                V = np.array([[x0, -3, d], [x1, -3, d], [x1, h, d], [x0, h, d]], float)
                V[:, 0] += shift
                item.polys.append((V, col, ob, 0.0))
            else:
                _, _, x0, x1, tops, col = it
                col = tuple(int(v) for v in 0.6 * np.array(col) + 0.4 * haze)
                xs = np.linspace(x0, x1, len(tops))
                top = np.stack([xs, tops, np.full(len(tops), d)], 1)
                V = np.concatenate([[[x0, -3, d]], top, [[x1, -3, d]]])
                V[:, 0] += shift
                item.polys.append((V, col, ov, 0.0))
            self.items.append(item)

    # ---------------- static world
    def static(self, desc) -> None:
        kind = desc[0]
        getattr(self, "_st_" + kind)(desc)

    def _st_crosswalk(self, desc) -> None:  # drawn by the ground pass
        pass

    def _st_building(self, desc) -> None:
        _, sign, s0, s1, off, lk = desc
        side = self.sc.side(sign)
        cs = self.cam_s
        z0, z1 = s0 - cs, s1 - cs
        if z1 < 0.5 or z0 > _AHEAD + 20:
            return
        xb = side.x(off)
        H = lk["H"]
        reg = self.reg
        ob = reg.new(BUILDING, tex=_TX_BUILDING)
        oflat = reg.new(BUILDING, tex=_TX_FLAT)
        xo = xb + sign * lk["depth"]
        item = _Item(1, self.dist(xb, max(z0, 0.0)), (min(xb, xo), max(xb, xo), z0, z1))
        light = self.light
        f_shade = float(light.shade(np.array([-sign, 0.0, 0.0])))
        col = _mul(lk["col"], f_shade)
        zs = np.array(_pieces(max(z0, 0.3), z1))
        P = item.polys
        # near end face (facing the camera) when the building starts ahead
        if z0 > 0.3:
            V = np.array([[xb, 0, z0], [xo, 0, z0], [xo, H, z0], [xb, H, z0]], float)
            P.append((V, _mul(lk["col"], float(light.shade(np.array([0.0, 0, -1.0])))), ob, 0.0))

        def strips(x, ya, yb_, c, o):
            n = len(zs) - 1
            V = np.empty((n, 4, 3))
            V[:, :, 0] = x
            V[:, 0, 1] = V[:, 1, 1] = ya
            V[:, 2, 1] = V[:, 3, 1] = yb_
            V[:, 0, 2] = V[:, 3, 2] = zs[:-1]
            V[:, 1, 2] = V[:, 2, 2] = zs[1:]
            for q in V:
                P.append((q, c, o, 0.0))

        strips(xb, 0.0, H, col, ob)
        eps = -sign * 0.03
        dmin = self.dist(xb, max(z0, 0.5))
        if self.px(dmin) * 0.5 < 0.8:
            self.items.append(item)
            return
        strips(xb + eps, H - 0.45, H, _mul(lk["cornice"], f_shade), oflat)
        strips(xb + eps, 0.0, 0.5, _mul(lk["col"], 0.7 * f_shade), oflat)
        # windows: a grid on the facade, culled when behind, outside the view or too small
        fh, ww, wh, sp = lk["fh"], lk["ww"], lk["wh"], lk["spacing"]
        ncol, floors = lk["ncol"], lk["floors"]
        margin = (s1 - s0 - ncol * sp) / 2.0 + (sp - ww) / 2.0
        za = z0 + margin + np.arange(ncol) * sp
        zm = za + ww / 2
        wpx = ww * self.cam.fy / np.maximum(np.hypot(xb + 0.5 * self.cam.curv * zm * zm - self.cam.cam_x, zm), 0.3)
        cols_ok = (za > 1.0) & (za < _AHEAD) & (wpx > 1.6) & self.in_view_arr(np.full(ncol, xb), zm, ww)
        ci = np.flatnonzero(cols_ok)
        night = self.night
        ol = reg.new(BUILDING, emit=(225, 185, 125), tex=_TX_FLAT) if night else oflat
        glass = _mul(lk["glass"], f_shade)
        frame = _mul(lk["frame"], f_shade)
        lit_col = (180, 160, 120)
        first = 1 if lk["shop"] else 0
        fi = np.arange(first, floors)
        ya = fi * fh + (fh - wh) * 0.55
        fi, ya = fi[ya + wh <= H - 0.5], ya[ya + wh <= H - 0.5]
        if len(ci) and len(fi):

            def grid(x, pad):
                V = np.empty((len(fi), len(ci), 4, 3))
                V[..., 0] = x
                y0 = (ya - pad)[:, None]
                y1 = (ya + wh + pad)[:, None]
                a0 = (za[ci] - pad)[None, :]
                a1 = (za[ci] + ww + pad)[None, :]
                V[:, :, 0, 1] = y0
                V[:, :, 1, 1] = y0
                V[:, :, 2, 1] = y1
                V[:, :, 3, 1] = y1
                V[:, :, 0, 2] = a0
                V[:, :, 3, 2] = a0
                V[:, :, 1, 2] = a1
                V[:, :, 2, 2] = a1
                return V

            Vg = grid(xb + 2 * eps, 0.0)
            Vf = grid(xb + eps, 0.08)
            framed = (wpx[ci] > 5.0).tolist()
            lit = lk["lit"][np.ix_(fi, ci)].tolist()
            for r in range(len(fi)):
                for c in range(len(ci)):
                    if framed[c]:
                        P.append((Vf[r, c], frame, oflat, 0.0))
                    if lit[r][c]:
                        P.append((Vg[r, c], lit_col if night else glass, ol, 0.0))
                    else:
                        P.append((Vg[r, c], glass, oflat, 0.0))
        if lk["shop"]:
            # ground-floor shop windows and an awning-coloured band
            ya0, ya1 = 0.55, min(fh - 0.5, 2.9)
            shop_glass = _mul(lk["glass"], f_shade * 1.1)
            for c in ci.tolist():
                a0, a1 = za[c] - 0.3, za[c] + ww + 0.3
                V = np.array(
                    [[xb + 2 * eps, ya0, a0], [xb + 2 * eps, ya0, a1], [xb + 2 * eps, ya1, a1], [xb + 2 * eps, ya1, a0]]
                )
                P.append((V, shop_glass, ol if lk["lit"][0, c] else oflat, 0.0))
            strips(xb + 3 * eps, ya1 + 0.1, ya1 + 0.6, _mul(lk["shopcol"], f_shade), oflat)
        self.items.append(item)

    def _st_wall(self, desc) -> None:
        _, sign, s0, s1, off, h, col = desc
        self._long_box(sign, s0, s1, off, 0.25, h, col, self.reg.new(WALL, tex=_TX_METAL), cap=_mul(col, 0.8))

    def _st_hedge(self, desc) -> None:
        _, sign, s0, s1, off, h, thick, col = desc
        self._long_box(sign, s0, s1, off, thick, h, col, self.reg.new(VEGETATION, tex=_TX_VEG))

    def _long_box(self, sign, s0, s1, off, thick, h, col, obj, cap=None) -> None:
        cs = self.cam_s
        z0, z1 = max(s0 - cs, 0.3), s1 - cs
        if z1 < 0.5 or z0 > _AHEAD + 20:
            return
        side = self.sc.side(sign)
        xi, xo = side.x(off), side.x(off + thick)
        item = _Item(1, self.dist(xi, z0), (min(xi, xo), max(xi, xo), z0, z1))
        light = self.light
        fn = _mul(col, float(light.shade(np.array([-sign, 0.0, 0.0]))))
        ft = _mul(col, float(light.shade(np.array([0.0, 1.0, 0.0]))))
        zs = _pieces(z0, z1)
        for za, zb in zip(zs[:-1], zs[1:]):
            if h < self.cam.h:  # top face visible
                item.polys.append((np.array([[xi, h, za], [xi, h, zb], [xo, h, zb], [xo, h, za]], float), ft, obj, 0.0))
            item.polys.append((np.array([[xi, 0, za], [xi, 0, zb], [xi, h, zb], [xi, h, za]], float), fn, obj, 0.0))
            if cap is not None:
                e = -sign * 0.02
                item.polys.append(
                    (
                        np.array(
                            [[xi + e, h - 0.12, za], [xi + e, h - 0.12, zb], [xi + e, h, zb], [xi + e, h, za]], float
                        ),
                        _mul(cap, 1.0),
                        obj,
                        0.0,
                    )
                )
        if s0 - cs > 0.3:
            z = s0 - cs
            item.polys.append(
                (
                    np.array([[xi, 0, z], [xo, 0, z], [xo, h, z], [xi, h, z]], float),
                    _mul(col, float(light.shade(np.array([0.0, 0, -1.0])))),
                    obj,
                    0.0,
                )
            )
        self.items.append(item)

    def _st_fence(self, desc) -> None:
        _, sign, s0, s1, off, h, col, style = desc
        cs = self.cam_s
        z0, z1 = max(s0 - cs, 0.3), s1 - cs
        if z1 < 0.5 or z0 > _AHEAD + 20:
            return
        side = self.sc.side(sign)
        x = side.x(off)
        obj = self.reg.new(FENCE, tex=_TX_METAL)
        item = _Item(1, self.dist(x, z0), (x - 0.05, x + 0.05, z0, z1))
        P = item.polys
        c = _mul(col, float(self.light.shade(np.array([-sign, 0.0, 0.0]))))
        zs = _pieces(z0, z1)
        if style == "boards":
            for za, zb in zip(zs[:-1], zs[1:]):
                P.append((np.array([[x, 0, za], [x, 0, zb], [x, h, zb], [x, h, za]], float), c, obj, 0.0))
            cp = _mul(c, 0.75)
            e = -sign * 0.03
            z = math.ceil((s0) / 2.5) * 2.5 - cs
            while z < z1:
                if z > 0.5:
                    P.append(
                        (
                            np.array(
                                [
                                    [x + e, 0, z - 0.05],
                                    [x + e, 0, z + 0.05],
                                    [x + e, h, z + 0.05],
                                    [x + e, h, z - 0.05],
                                ],
                                float,
                            ),
                            cp,
                            obj,
                            0.0,
                        )
                    )
                z += 2.5
        else:
            # railing: two rails, posts, vertical bars (merged into a panel where too dense to resolve)
            for ya, yb_ in ((h - 0.07, h), (0.12, 0.19)):
                for za, zb in zip(zs[:-1], zs[1:]):
                    P.append((np.array([[x, ya, za], [x, ya, zb], [x, yb_, zb], [x, yb_, za]], float), c, obj, 0.0))
            bar_sp = 0.16
            z = math.ceil(s0 / bar_sp) * bar_sp - cs
            z_dense = None
            while z < z1:
                if z > 0.5:
                    if self.px(self.dist(x, z)) * bar_sp < 3.0:
                        z_dense = z
                        break
                    w = 0.03 if (round((z + cs) / bar_sp) % 15) else 0.06
                    P.append(
                        (
                            np.array([[x, 0.12, z - w], [x, 0.12, z + w], [x, h, z + w], [x, h, z - w]], float),
                            c,
                            obj,
                            0.0,
                        )
                    )
                z += bar_sp
            if z_dense is not None:
                for za, zb in zip(*(lambda q: (q[:-1], q[1:]))(_pieces(z_dense, z1))):
                    P.append(
                        (
                            np.array([[x, 0.12, za], [x, 0.12, zb], [x, h, zb], [x, h, za]], float),
                            _mul(c, 0.9),
                            obj,
                            0.0,
                        )
                    )
        self.items.append(item)

    def _place_street_item(self, desc, z_min: float, margin: float):  # noqa: ANN001, ANN202
        """(x, z, distance, look) of a roadside item described by ``desc`` in camera
        coordinates, or None when it is behind ``z_min``, beyond the horizon of content or
        out of view (with ``margin`` metres of slack for its size)."""
        _, sign, s, off, lk = desc
        z = s - self.cam_s
        if z < z_min or z > _AHEAD:
            return None
        x = self.sc.side(sign).x(off)
        if not self.in_view(x, z, margin):
            return None
        return x, z, self.dist(x, z), lk

    def _st_tree(self, desc) -> None:
        placed = self._place_street_item(desc, -3.0, desc[4]["R"] * 1.6 + 0.5)
        if placed is None:
            return
        x, z, d, lk = placed
        R = lk["R"]
        item = _Item(1, d, (x - 0.8 * R, x + 0.8 * R, z - 0.2, z + 0.2))
        e = _facing(self.cam, x, z)
        pos = (x, 0.0, z)
        obj = self.reg.new(VEGETATION, tex=_TX_VEG)
        R, base = lk["R"], lk["base"]
        P = item.polys
        tw = lk["trunk_w"]
        Q = [(np.array([[-tw / 2, 0], [tw / 2, 0], [tw * 0.35, base + R], [-tw * 0.35, base + R]]), lk["trunk"])]
        n = 12 if self.px(d) * R > 12 else 7
        if lk["conifer"]:
            g = lk["green"]
            for i, (w, y0, y1) in enumerate(((1.2, 0.0, 1.3), (0.95, 0.9, 2.1), (0.7, 1.7, 2.9), (0.4, 2.5, 3.5))):
                Q.append(
                    (
                        np.array(
                            [[-w * R, base + y0 * R * 0.8], [w * R, base + y0 * R * 0.8], [0, base + y1 * R * 0.8]]
                        ),
                        _mul(g, 0.75 + 0.12 * i),
                    )
                )
        else:
            cy = base + R
            for du, dy, r, col in lk["blobs"]:
                Q.append((_ring(n, du, cy + dy, r, r * 0.92), col))
        _flush2d(P, pos, e, Q, obj)
        self.shadows.append(
            np.array(
                [
                    [x - R * 0.8, 0, z - R * 0.6],
                    [x + R * 0.8, 0, z - R * 0.6],
                    [x + R * 0.8, 0, z + R * 0.6],
                    [x - R * 0.8, 0, z + R * 0.6],
                ]
            )
        )
        self.items.append(item)

    def _pole(self, P, x, z, h, w, col, obj) -> None:
        lo, hi = _box_local(x - w / 2, x + w / 2, 0.0, h, z - w / 2, z + w / 2)
        _solid(lo, hi, self.cam.pos, self.light, [None, None, col, col, col, col], obj, P)

    def _st_lamp(self, desc) -> None:
        _, sign, s, off, h = desc
        z = s - self.cam_s
        if z < -2 or z > _AHEAD:
            return
        side = self.sc.side(sign)
        x = side.x(off)
        self.pools.append((x - sign * 1.8, z, 0.7 * h))
        if not self.in_view(x, z, 2.5):
            return
        d = self.dist(x, z)
        item = _Item(1, d, (x - 0.1, x + 0.1, z - 0.1, z + 0.1))
        obj = self.reg.new(POLE, tex=_TX_METAL)
        col = self.sc.lamp_col
        P = item.polys
        self._pole(P, x, z, h, 0.16, col, obj)
        arm = 1.8
        xe = x - sign * arm
        # arm: a thin slanted box towards the road
        lo = [[x, h - 0.1, z - 0.05], [xe, h + 0.25, z - 0.05], [xe, h + 0.25, z + 0.05], [x, h - 0.1, z + 0.05]]
        hi = [[x, h - 0.02, z - 0.05], [xe, h + 0.33, z - 0.05], [xe, h + 0.33, z + 0.05], [x, h - 0.02, z + 0.05]]
        _solid(lo, hi, self.cam.pos, self.light, col, obj, P)
        # lamp head, its glowing underside is an emitter at night
        oe = self.reg.new(POLE, emit=(255, 214, 160), tex=_TX_FLAT) if self.night else obj
        lo, hi = _box_local(xe - 0.35, xe + 0.35, h + 0.1, h + 0.3, z - 0.17, z + 0.17)
        _solid(lo, hi, self.cam.pos, self.light, [(230, 228, 210), _mul(col, 1.1), col, col, col, col], obj, P)
        if self.night and h + 0.1 > self.cam.h:
            P.append(
                (
                    np.array(
                        [
                            [xe - 0.3, h + 0.09, z - 0.14],
                            [xe + 0.3, h + 0.09, z - 0.14],
                            [xe + 0.3, h + 0.09, z + 0.14],
                            [xe - 0.3, h + 0.09, z + 0.14],
                        ]
                    ),
                    (250, 240, 215),
                    oe,
                    0.0,
                )
            )
        self.items.append(item)

    def _st_sign(self, desc) -> None:
        placed = self._place_street_item(desc, 0.5, 1.0)
        if placed is None:
            return
        x, z, d, lk = placed
        item = _Item(1, d, (x - 0.4, x + 0.4, z - 0.07, z + 0.07))
        op = self.reg.new(POLE, tex=_TX_METAL)
        os_ = self.reg.new(TRAFFIC_SIGN, tex=_TX_FLAT)
        P = item.polys
        h, r = lk["h"], lk["size"] / 2
        top = h + r * 2 + (r * 1.6 if lk["extra"] else 0)
        self._pole(P, x, z, top - 0.05, 0.07, (130, 134, 138), op)
        e = (1.0, 0.0)
        zf = z - 0.06
        pos = (x, 0.0, zf)
        cy = h + r
        kind = lk["kind"]
        if lk["back"]:
            shape = (
                _ring(16, 0, cy, r, r)
                if kind.startswith("round")
                else (
                    _ring(3, 0, cy, r * 1.15, r * 1.15)
                    if kind == "triangle"
                    else np.array([[-r, cy - r], [r, cy - r], [r, cy + r], [-r, cy + r]])
                )
            )
            if kind == "triangle":
                shape = np.array([[-r * 1.1, cy + r * 0.6], [r * 1.1, cy + r * 0.6], [0, cy - r * 1.1]])
            P.append((_plane((x, 0, z + 0.06), e, shape), (150, 152, 156), os_, 0.0))
        else:
            red, white, blue, black = (196, 28, 32), (238, 238, 232), (30, 70, 170), (25, 25, 25)
            if kind == "round_red":
                P.append((_plane(pos, e, _ring(18, 0, cy, r, r)), red, os_, 0.0))
                P.append((_plane(pos, e, _ring(18, 0, cy, r * 0.75, r * 0.75)), white, os_, 0.0))
                P.append(
                    (
                        _plane(
                            pos,
                            e,
                            [
                                [-r * 0.35, cy - r * 0.25],
                                [r * 0.35, cy - r * 0.25],
                                [r * 0.35, cy + r * 0.3],
                                [-r * 0.35, cy + r * 0.3],
                            ],
                        ),
                        black,
                        os_,
                        0.0,
                    )
                )
            elif kind == "round_blue":
                P.append((_plane(pos, e, _ring(18, 0, cy, r, r)), blue, os_, 0.0))
                P.append(
                    (
                        _plane(
                            pos,
                            e,
                            [
                                [-r * 0.12, cy - r * 0.6],
                                [r * 0.12, cy - r * 0.6],
                                [r * 0.12, cy + 0.2 * r],
                                [r * 0.4, cy + 0.2 * r],
                                [0, cy + 0.65 * r],
                                [-r * 0.4, cy + 0.2 * r],
                                [-r * 0.12, cy + 0.2 * r],
                            ],
                        ),
                        white,
                        os_,
                        0.0,
                    )
                )
            elif kind == "triangle":
                P.append(
                    (
                        _plane(pos, e, [[-r * 1.15, cy - r * 0.7], [r * 1.15, cy - r * 0.7], [0, cy + r * 1.1]]),
                        red,
                        os_,
                        0.0,
                    )
                )
                P.append(
                    (
                        _plane(pos, e, [[-r * 0.8, cy - r * 0.52], [r * 0.8, cy - r * 0.52], [0, cy + r * 0.72]]),
                        white,
                        os_,
                        0.0,
                    )
                )
            elif kind == "stop":
                P.append((_plane(pos, e, _rot_ring(8, 0, cy, r * 1.08)), red, os_, 0.0))
                P.append(
                    (
                        _plane(
                            pos,
                            e,
                            [
                                [-r * 0.6, cy - r * 0.15],
                                [r * 0.6, cy - r * 0.15],
                                [r * 0.6, cy + r * 0.15],
                                [-r * 0.6, cy + r * 0.15],
                            ],
                        ),
                        white,
                        os_,
                        0.0,
                    )
                )
            elif kind == "diamond":
                P.append(
                    (
                        _plane(pos, e, [[0, cy - r * 1.1], [r * 1.1, cy], [0, cy + r * 1.1], [-r * 1.1, cy]]),
                        white,
                        os_,
                        0.0,
                    )
                )
                P.append(
                    (
                        _plane(pos, e, [[0, cy - r * 0.75], [r * 0.75, cy], [0, cy + r * 0.75], [-r * 0.75, cy]]),
                        (235, 190, 30),
                        os_,
                        0.0,
                    )
                )
            else:
                base = blue if kind == "rect_blue" else white
                P.append(
                    (
                        _plane(pos, e, [[-r * 0.9, cy - r], [r * 0.9, cy - r], [r * 0.9, cy + r], [-r * 0.9, cy + r]]),
                        base,
                        os_,
                        0.0,
                    )
                )
                P.append(
                    (
                        _plane(
                            pos,
                            e,
                            [
                                [-r * 0.5, cy - r * 0.5],
                                [r * 0.5, cy - r * 0.5],
                                [r * 0.5, cy + r * 0.55],
                                [-r * 0.5, cy + r * 0.55],
                            ],
                        ),
                        white if kind == "rect_blue" else black,
                        os_,
                        0.0,
                    )
                )
            if lk["extra"]:
                cy2 = h + 2 * r + r * 0.8
                P.append(
                    (
                        _plane(
                            pos, e, [[-r, cy2 - r * 0.6], [r, cy2 - r * 0.6], [r, cy2 + r * 0.6], [-r, cy2 + r * 0.6]]
                        ),
                        white,
                        os_,
                        0.0,
                    )
                )
                P.append(
                    (
                        _plane(
                            pos,
                            e,
                            [
                                [-r * 0.8, cy2 - r * 0.1],
                                [r * 0.8, cy2 - r * 0.1],
                                [r * 0.8, cy2 + r * 0.1],
                                [-r * 0.8, cy2 + r * 0.1],
                            ],
                        ),
                        black,
                        os_,
                        0.0,
                    )
                )
        self.items.append(item)

    def _st_tlight(self, desc) -> None:
        placed = self._place_street_item(desc, 0.5, 7.0)
        if placed is None:
            return
        x, z, d, lk = placed
        sign = desc[1]  # which side of the road: the arm reaches over it
        item = _Item(1, d, (x - 0.2, x + 0.2, z - 0.15, z + 0.15))
        reg = self.reg
        op = reg.new(POLE, tex=_TX_METAL)
        ot = reg.new(TRAFFIC_LIGHT, tex=_TX_FLAT)
        P = item.polys
        h = lk["h"]
        pole_col = (90, 94, 98)
        if lk["overhead"]:
            ha = h + 1.8
            self._pole(P, x, z, ha, 0.2, pole_col, op)
            xe = x - sign * float(min(6.0, self.sc.lay.lw * 1.5))
            lo, hi = _box_local(min(x, xe), max(x, xe), ha - 0.15, ha, z - 0.08, z + 0.08)
            _solid(lo, hi, self.cam.pos, self.light, pole_col, op, P)
            hx, hy = xe + sign * 0.5, ha - 0.15 - 1.0
        else:
            self._pole(P, x, z, h, 0.13, pole_col, op)
            hx, hy = x, h - 1.0
        lo, hi = _box_local(hx - 0.17, hx + 0.17, hy, hy + 1.0, z - 0.12, z + 0.12)
        house = (34, 36, 34)
        _solid(lo, hi, self.cam.pos, self.light, house, ot, P)
        if not lk["back"]:
            zf = z - 0.13
            P.append(
                (
                    _plane(
                        (hx, 0, zf),
                        (1.0, 0.0),
                        [[-0.26, hy - 0.05], [0.26, hy - 0.05], [0.26, hy + 1.05], [-0.26, hy + 1.05]],
                    ),
                    (22, 22, 22),
                    ot,
                    0.0,
                )
            )
            on_cols = [(255, 40, 30), (255, 190, 20), (40, 255, 120)]
            for i in range(3):
                lit = (2 - i) == lk["state"]
                col = on_cols[i] if lit else _mul(on_cols[i], 0.22)
                o = reg.new(TRAFFIC_LIGHT, emit=on_cols[i], tex=_TX_FLAT) if lit else ot
                P.append(
                    (
                        _plane((hx, 0, zf - 0.01), (1.0, 0.0), _ring(12, 0, hy + 0.18 + 0.32 * i, 0.11, 0.11)),
                        col,
                        o,
                        0.0,
                    )
                )
        self.items.append(item)

    # ---------------- agents
    def agent(self, ag: _Agent) -> None:
        z = ag.s - self.cam_s
        hl = ag.half_len
        if z + hl < -2.0 or z - hl > _AHEAD or not self.in_view(ag.x, z, hl + 1.5):
            return
        getattr(self, "_ag_" + ag.kind)(ag, z)

    def _new_item(self, ag: _Agent, z: float, half_w: float) -> _Item:
        # sort key: distance from the camera to the closest point of the footprint
        hl = ag.half_len
        c, s = abs(math.cos(ag.phi)), abs(math.sin(ag.phi))
        ex, ez = half_w * c + hl * s, hl * c + half_w * s
        x = ag.x + self.cam.bend(z) - self.cam.cam_x
        dx = max(0.0, abs(x) - ex)
        dz = max(0.0, abs(z) - ez)
        return _Item(1, math.hypot(dx, dz), (ag.x - ex, ag.x + ex, z - ez, z + ez))

    def _ag_car(self, ag: _Agent, z: float) -> None:
        self._vehicle(ag, z)

    def _ag_truck(self, ag: _Agent, z: float) -> None:
        self._vehicle(ag, z)

    def _ag_bus(self, ag: _Agent, z: float) -> None:
        self._vehicle(ag, z)

    def _vehicle(self, ag: _Agent, z: float) -> None:
        lk = ag.look
        L, W, H = lk["L"], lk["W"], lk["H"]
        item = self._new_item(ag, z, W / 2)
        if item.dist > (130.0 if ag.speed == 0 else 190.0):
            return
        reg, cam, light = self.reg, self.cam, self.light
        inst = ag.label * 1000 + ag.k
        ob = reg.new(ag.label, inst, tex=_TX_VEH)
        og = reg.new(ag.label, inst, tex=_TX_FLAT)
        P = item.polys
        xc, phi = ag.x, ag.phi
        detail = self.px(item.dist + 1.0) * W > 14
        r = lk["r"]
        tyre = (24, 24, 26)
        kind = ag.kind
        col, glass = lk["col"], lk["glass"]
        if kind == "car":
            axles = (L / 2 - lk["hood"] * 0.62, -L / 2 + max(0.75, lk["trunk"] * 0.8 + 0.2))
        elif kind == "truck":
            axles = (L / 2 - 1.3, -L / 2 + 1.2, -L / 2 + 2.5)
        else:
            axles = (L / 2 - 2.6, -L / 2 + 3.0)
        boxes, cols, objs = [], [], []
        if detail:
            # tyres: their tread shows below the body from behind and in front
            for al in axles:
                for sgn in (-1, 1):
                    a_out, a_in = sgn * (W / 2 - 0.03), sgn * (W / 2 - 0.28)
                    boxes.append(_box8(min(a_in, a_out), max(a_in, a_out), 0.0, r * 1.1, al - r * 0.55, al + r * 0.55))
                    cols.append(tyre)
                    objs.append(og)
        nb = len(boxes)
        if kind == "car":
            hb, clear = lk["hb"], (0.3 if lk["variant"] != "suv" else 0.38)
            body = _box8(-W / 2, W / 2, clear, hb, -L / 2, L / 2)
            for i in range(4, 8):
                body[i][0] *= 0.97  # slightly rounded shoulder
            ins, t = 0.07, 0.2
            rear_slope = {"sedan": 0.55, "hatch": 0.28, "suv": 0.22, "van": 0.12}[lk["variant"]]
            front_slope = {"sedan": 0.75, "hatch": 0.7, "suv": 0.55, "van": 0.45}[lk["variant"]]
            lc0, lc1 = -L / 2 + lk["trunk"], L / 2 - lk["hood"]
            cabin = [
                [-W / 2 + ins, hb, lc0],
                [W / 2 - ins, hb, lc0],
                [W / 2 - ins, hb, lc1],
                [-W / 2 + ins, hb, lc1],
                [-W / 2 + t, H, lc0 + rear_slope],
                [W / 2 - t, H, lc0 + rear_slope],
                [W / 2 - t, H, lc1 - front_slope],
                [-W / 2 + t, H, lc1 - front_slope],
            ]
            boxes += [body, cabin]
            cols += [col, [None, col, col, col, col, col]]
            objs += [ob, ob]
        elif kind == "truck":
            Hc, lcab0 = lk["Hc"], L / 2 - 2.2
            boxes += [
                _box8(-W / 2, W / 2, 0.5, Hc, lcab0, L / 2),
                _box8(-W / 2 + 0.3, W / 2 - 0.3, 0.5, 1.0, -L / 2 + 0.4, lcab0),
                _box8(-W / 2, W / 2, 1.0, H, -L / 2, lcab0 - 0.25),
            ]
            cols += [col, (40, 40, 42), lk["cargo"]]
            objs += [ob, og, ob]
        else:
            boxes.append(_box8(-W / 2, W / 2, 0.35, H, -L / 2, L / 2))
            cols.append(col)
            objs.append(ob)
        vis_all = _solids(_local(xc, z, phi, np.array(boxes, float)), cols, objs, cam.pos, light, P)
        vis = vis_all[nb]
        dec: list = []  # decals in local coordinates, transformed in one go
        lights_on = ag.lane is not None  # parked vehicles have their lights off

        def lamp(emit):
            return reg.new(ag.label, inst, emit=emit if lights_on else (0, 0, 0), tex=_TX_FLAT)

        def decal(pts, c, o):
            dec.append((pts, c, o))

        def quad_l(a0, a1, y0, y1, lpos):  # on a face across the vehicle (front/rear)
            return [[a0, y0, lpos], [a1, y0, lpos], [a1, y1, lpos], [a0, y1, lpos]]

        def quad_a(apos, y0, y1, l0, l1):  # on a side face
            return [[apos, y0, l0], [apos, y0, l1], [apos, y1, l1], [apos, y1, l0]]

        if kind == "car":
            # windows inset into the cabin faces: rear window, windscreen, side windows with a B pillar
            vis_cab = vis_all[nb + 1]
            cab = np.array(cabin)
            shade_g = _mul(glass, 0.95)
            for fi, (i0, i1, i2, i3), (mu, mv0, mv1) in (
                (2, (0, 1, 5, 4), (0.09, 0.12, 0.1)),
                (4, (2, 3, 7, 6), (0.07, 0.1, 0.08)),
                (3, (1, 2, 6, 5), (0.06, 0.14, 0.12)),
                (5, (3, 0, 4, 7), (0.06, 0.14, 0.12)),
            ):
                if not vis_cab[fi]:
                    continue
                q = cab[[i0, i1, i2, i3]]
                if fi in (3, 5):
                    for lo_, hi_ in ((mu, 0.47), (0.53, 1 - mu)):
                        decal(_inset(q, lo_, hi_, mv0, mv1), shade_g, og)
                else:
                    decal(_inset(q, mu, 1 - mu, mv0, mv1), shade_g, og)
        if detail:
            if kind == "car":
                near_rear, near_front = vis[2], vis[4]
                if near_rear or near_front:
                    fl = -L / 2 - 0.01 if near_rear else L / 2 + 0.01
                    decal(quad_l(-W / 2, W / 2, clear, clear + 0.16, fl), _mul(col, 0.55), og)
                    decal(quad_l(-0.26, 0.26, clear + 0.2, clear + 0.32, fl), (230, 230, 222), og)
                    if near_front:
                        decal(quad_l(-0.42, 0.42, clear + 0.36, hb - 0.14, fl), (30, 32, 34), og)
                    lcol, emit = ((200, 20, 24), (255, 50, 40)) if near_rear else ((240, 240, 225), (255, 250, 235))
                    ol = lamp(emit)
                    for sgn in (-1, 1):
                        decal(quad_l(sgn * (W / 2 - 0.05), sgn * (W / 2 - 0.34), hb - 0.22, hb - 0.07, fl), lcol, ol)
            elif kind == "truck":
                vis_cab, vis = vis, vis_all[nb + 2]
                near_rear, near_front = vis[2], vis_cab[4]
                if near_front:
                    fl = L / 2 + 0.01
                    decal(
                        [
                            [-W / 2 + 0.12, Hc - 1.15, fl],
                            [W / 2 - 0.12, Hc - 1.15, fl],
                            [W / 2 - 0.15, Hc - 0.2, fl],
                            [-W / 2 + 0.15, Hc - 0.2, fl],
                        ],
                        glass,
                        og,
                    )
                    decal(quad_l(-W / 2 + 0.1, W / 2 - 0.1, 0.55, 0.8, fl), (40, 40, 42), og)
                    ol = lamp((255, 250, 235))
                    for sgn in (-1, 1):
                        decal(quad_l(sgn * (W / 2 - 0.1), sgn * (W / 2 - 0.4), 0.85, 1.0, fl), (235, 235, 220), ol)
                for sgn, fi in ((1, 3), (-1, 5)):
                    if vis_cab[fi]:
                        decal(quad_a(sgn * (W / 2 + 0.01), Hc - 1.1, Hc - 0.3, L / 2 - 1.2, L / 2 - 0.25), glass, og)
                if near_rear:
                    rl = -L / 2 - 0.01
                    decal(quad_l(-0.03, 0.03, 1.05, H - 0.05, rl), _mul(lk["cargo"], 0.6), og)
                    ol = lamp((255, 50, 40))
                    for sgn in (-1, 1):
                        decal(quad_l(sgn * (W / 2 - 0.08), sgn * (W / 2 - 0.35), 1.05, 1.22, rl), (200, 20, 24), ol)
                vis = vis_cab  # wheel discs below
                vis = vis_all[nb + 1] if not (vis_cab[3] or vis_cab[5]) else vis_cab
            else:  # bus
                for sgn, fi in ((1, 3), (-1, 5)):
                    if vis[fi]:
                        a_ = sgn * (W / 2 + 0.01)
                        decal(quad_a(a_, 1.2, H - 0.4, -L / 2 + 0.5, L / 2 - 0.7), glass, og)
                        decal(quad_a(a_ * 1.001, 0.4, H - 0.35, L / 2 - 1.9, L / 2 - 0.8), _mul(glass, 0.8), og)
                if vis[4]:
                    fl = L / 2 + 0.01
                    decal(quad_l(-W / 2 + 0.1, W / 2 - 0.1, 1.0, H - 0.38, fl), glass, og)
                    od = lamp((255, 160, 40))
                    decal(quad_l(-W / 2 + 0.25, W / 2 - 0.25, H - 0.33, H - 0.1, fl), (240, 150, 40), od)
                    ol = lamp((255, 250, 235))
                    for sgn in (-1, 1):
                        decal(quad_l(sgn * (W / 2 - 0.1), sgn * (W / 2 - 0.45), 0.6, 0.78, fl), (235, 235, 220), ol)
                if vis[2]:
                    rl = -L / 2 - 0.01
                    decal(quad_l(-W / 2 + 0.3, W / 2 - 0.3, H - 1.3, H - 0.4, rl), glass, og)
                    ol = lamp((255, 50, 40))
                    for sgn in (-1, 1):
                        decal(quad_l(sgn * (W / 2 - 0.08), sgn * (W / 2 - 0.3), 0.7, 1.1, rl), (200, 20, 24), ol)
            # wheels seen from the side: dark arch, tyre disc, hub
            cu, su = _unit_circle(12)
            upper = su >= -0.05
            for sgn, fi in ((1, 3), (-1, 5)):
                if not vis[fi]:
                    continue
                a_ = sgn * (W / 2 + 0.015)
                for al in axles:
                    arch_l = np.concatenate([[al + r * 1.18], al + r * 1.18 * cu[upper], [al - r * 1.18]])
                    arch_y = np.concatenate([[r - 0.02], r + r * 1.18 * su[upper], [r - 0.02]])
                    decal(np.stack([np.full(len(arch_l), a_), arch_y, arch_l], 1), (18, 18, 20), og)
                    decal(np.stack([np.full(12, a_ * 1.002), r + r * su, al + r * cu], 1), tyre, og)
                    decal(
                        np.stack([np.full(12, a_ * 1.004), r + 0.55 * r * su, al + 0.55 * r * cu], 1),
                        (150, 152, 156),
                        og,
                    )
        if dec:
            arrs = [np.asarray(d[0], float) for d in dec]
            T = _local(xc, z, phi, np.concatenate(arrs))
            o = 0
            for arr, (_, c, ob_) in zip(arrs, dec):
                P.append((T[o : o + len(arr)], c, ob_, 0.0))
                o += len(arr)
        # contact shadow on the ground
        self.shadows.append(
            _local(
                xc,
                z,
                phi,
                [
                    [-W / 2 - 0.15, 0, -L / 2 - 0.2],
                    [W / 2 + 0.15, 0, -L / 2 - 0.2],
                    [W / 2 + 0.15, 0, L / 2 + 0.2],
                    [-W / 2 - 0.15, 0, L / 2 + 0.2],
                ],
            )
        )
        self.items.append(item)

    def _person_polys(
        self, P, pos, e, lk, obj, phase: float, profile: bool, facing_away: bool, simple: bool = False
    ) -> None:
        H = lk["H"]
        skin, hair, top, legs, shoes = lk["skin"], lk["hair"], lk["top"], lk["legs"], lk["shoes"]
        Q: list = []
        S = lambda pts: np.asarray(pts, float) * H  # noqa: E731
        if lk.get("stand"):
            phase = 0.0
        sw = math.sin(phase)
        if profile:
            far, near = _mul(legs, 0.75), legs
            for sgn, c in ((-1, far), (1, near)):
                foot = (0.17 * sw * sgn, 0.03)
                knee = (0.08 * sw * sgn + 0.03, 0.27)
                Q.append((S(_seg2((0.0, 0.5), knee, 0.085, 0.07)), c))
                Q.append((S(_seg2(knee, foot, 0.07, 0.055)), c))
                if not simple:
                    Q.append(
                        (
                            S(
                                [
                                    [foot[0] - 0.03, 0.0],
                                    [foot[0] + 0.07, 0.0],
                                    [foot[0] + 0.06, 0.04],
                                    [foot[0] - 0.03, 0.05],
                                ]
                            ),
                            shoes,
                        )
                    )
            Q.append((S(_seg2((0.0, 0.79), (-0.12 * sw, 0.47), 0.055, 0.045)), _mul(top, 0.75)))
            torso = [[-0.075, 0.47], [0.07, 0.47], [0.08, 0.8], [0.02, 0.83], [-0.06, 0.83], [-0.085, 0.8]]
            if lk["coat"]:
                torso = [[-0.095, 0.33], [0.09, 0.33], [0.08, 0.8], [0.02, 0.83], [-0.06, 0.83], [-0.085, 0.8]]
            Q.append((S(torso), top))
            if lk["bag"]:
                Q.append((S([[-0.14, 0.58], [-0.07, 0.58], [-0.07, 0.78], [-0.14, 0.76]]), lk["bagcol"]))
            Q.append((S(_seg2((0.0, 0.79), (0.12 * sw, 0.47), 0.055, 0.045)), top))
            if not simple:
                Q.append((S(_ring(5, 0.12 * sw, 0.45, 0.025, 0.03)), skin))
            if not simple:
                Q.append((S([[-0.02, 0.82], [0.025, 0.82], [0.025, 0.87], [-0.02, 0.87]]), skin))
            Q.append((S(_ring(10, 0.01, 0.925, 0.052, 0.066)), skin))
            if not simple:
                Q.append((S(_ring(8, -0.008, 0.948, 0.05, 0.048)), hair))
        else:
            lift = 0.025 * sw
            for sgn in (-1, 1):
                ya = 0.03 + max(0.0, lift * sgn)
                Q.append((S(_seg2((sgn * 0.05, 0.5), (sgn * 0.055, ya), 0.085, 0.06)), legs))
                if not simple:
                    Q.append(
                        (
                            S(
                                [
                                    [sgn * 0.025, ya - 0.03],
                                    [sgn * 0.085, ya - 0.03],
                                    [sgn * 0.085, ya + 0.02],
                                    [sgn * 0.025, ya + 0.02],
                                ]
                            ),
                            shoes,
                        )
                    )
            torso = [[-0.1, 0.47], [0.1, 0.47], [0.13, 0.8], [0.06, 0.835], [-0.06, 0.835], [-0.13, 0.8]]
            if lk["coat"]:
                torso = [[-0.12, 0.32], [0.12, 0.32], [0.13, 0.8], [0.06, 0.835], [-0.06, 0.835], [-0.13, 0.8]]
            Q.append((S(torso), top))
            for sgn in (-1, 1):
                hand = (sgn * 0.16, 0.46 + 0.02 * sw * sgn)
                Q.append((S(_seg2((sgn * 0.125, 0.79), hand, 0.055, 0.045)), _mul(top, 0.92)))
                if not simple:
                    Q.append((S(_ring(5, hand[0], hand[1] - 0.015, 0.022, 0.03)), skin))
            if lk["bag"] and facing_away:
                Q.append((S([[-0.09, 0.55], [0.09, 0.55], [0.085, 0.78], [-0.085, 0.78]]), lk["bagcol"]))
            if not simple:
                Q.append((S([[-0.025, 0.82], [0.025, 0.82], [0.025, 0.87], [-0.025, 0.87]]), skin))
            Q.append((S(_ring(10, 0.0, 0.925, 0.055, 0.068)), hair if facing_away else skin))
            if not facing_away:
                Q.append((S([[-0.056, 0.935], [0.056, 0.935], [0.05, 0.975], [0.0, 0.995], [-0.05, 0.975]]), hair))
        _flush2d(P, pos, e, Q, obj)

    def _ag_person(self, ag: _Agent, z: float) -> None:
        if z < 0.4:
            return
        item = self._new_item(ag, z, 0.25)
        if item.dist > 110.0:
            return
        obj = self.reg.new(PERSON, PERSON * 1000 + ag.k, tex=_TX_CLOTH)
        x = ag.x
        profile = abs(math.sin(ag.phi)) > 0.7
        if profile:  # crossing: drawn in the plane of the walking direction
            e = (1.0 if ag.phi > 0 else -1.0, 0.0)
        else:  # walking along the road: seen from the front or the back
            e = (1.0, 0.0) if math.cos(ag.phi) > 0 else (-1.0, 0.0)
        simple = ag.look["H"] * self.px(item.dist + 0.3) < 26
        self._person_polys(item.polys, (x, 0.0, z), e, ag.look, obj, ag.phase, profile, math.cos(ag.phi) > 0, simple)
        self.shadows.append(
            np.array([[x - 0.3, 0, z - 0.25], [x + 0.3, 0, z - 0.25], [x + 0.3, 0, z + 0.25], [x - 0.3, 0, z + 0.25]])
        )
        self.items.append(item)

    def _ag_bicycle(self, ag: _Agent, z: float) -> None:
        self._twowheeler(ag, z, motor=False)

    def _ag_motorcycle(self, ag: _Agent, z: float) -> None:
        self._twowheeler(ag, z, motor=True)

    def _twowheeler(self, ag: _Agent, z: float, motor: bool) -> None:
        if z < 0.8:
            return
        item = self._new_item(ag, z, 0.35)
        reg = self.reg
        ob = reg.new(ag.label, ag.label * 1000 + ag.k, tex=_TX_METAL)
        orr = reg.new(RIDER, RIDER * 1000 + ag.k2, tex=_TX_CLOTH)
        lk = ag.look
        P = item.polys
        xc, phi = ag.x, ag.phi
        tyre = (22, 22, 24)
        frame = lk["frame"]

        def line(pts, col, th, obj):
            P.append((_local(xc, z, phi, pts), col, obj, th))

        if motor:
            r, wb = 0.31, 0.72
        else:
            r, wb = 0.34, 0.52
        t = np.linspace(0, 2 * np.pi, 17)
        for al in (-wb, wb):
            circ = np.stack([np.zeros(17), r + r * np.sin(t), al + r * np.cos(t)], 1)
            line(circ, tyre, 0.1 if motor else 0.04, ob)
        if motor:
            for al in (-wb, wb):
                circ = np.stack([np.zeros(9), r + 0.55 * r * np.sin(t[::2]), al + 0.55 * r * np.cos(t[::2])], 1)
                line(circ, (150, 150, 155), 0.04, ob)
            lo, hi = _box_local(-0.17, 0.17, 0.32, 0.8, -0.45, 0.5)
            _solid(_local(xc, z, phi, lo), _local(xc, z, phi, hi), self.cam.pos, self.light, frame, ob, P)
            lo, hi = _box_local(-0.14, 0.14, 0.8, 0.9, -0.6, 0.05)
            _solid(_local(xc, z, phi, lo), _local(xc, z, phi, hi), self.cam.pos, self.light, (28, 28, 30), ob, P)
            line([[0, r, wb], [0, 1.0, wb - 0.18]], (160, 160, 165), 0.05, ob)
            line([[-0.35, 1.05, wb - 0.2], [0.35, 1.05, wb - 0.2]], (40, 40, 40), 0.035, ob)
            on = reg.new(ag.label, ag.label * 1000 + ag.k, emit=(255, 248, 230), tex=_TX_FLAT)
            orl = reg.new(ag.label, ag.label * 1000 + ag.k, emit=(255, 50, 40), tex=_TX_FLAT)
            line([[0, 0.88, wb - 0.1], [0, 0.92, wb - 0.1]], (240, 240, 220), 0.12, on)
            line([[0, 0.86, -0.62], [0, 0.88, -0.62]], (200, 20, 20), 0.1, orl)
            seat_y, hip_l, bar = 0.92, -0.2, (1.05, wb - 0.2)
        else:
            bb, seat, head = (0.0, 0.3), (-0.15, 0.86), (0.42, 0.9)
            pts = lambda seq: [[0, y, l] for l, y in seq]  # noqa: E731
            line(pts([(-wb, r), bb, seat, (-wb, r)]), frame, 0.035, ob)
            line(pts([seat, head, bb]), frame, 0.035, ob)
            line(pts([head, (wb, r)]), frame, 0.03, ob)
            line(pts([head, (0.4, 1.02)]), frame, 0.03, ob)
            line([[-0.27, 1.02, 0.4], [0.27, 1.02, 0.4]], (40, 40, 40), 0.03, ob)
            line([[0, 0.9, -0.24], [0, 0.9, -0.06]], (30, 30, 30), 0.06, ob)
            seat_y, hip_l, bar = 0.93, -0.15, (1.02, 0.4)
        # rider
        along = abs(math.cos(phi)) > 0.7
        skin, top, legs = lk["skin"], lk["top"], lk["legs"]
        head_col = lk["helmet"] if lk["wears_helmet"] else lk["hair"]
        if along:
            # seen from behind (or the front): a frontal figure in the plane across the bike
            e = (math.cos(phi), -math.sin(phi))  # lateral axis of the bike
            pos = tuple(_local(xc, z, phi, [[0.0, 0.0, hip_l]])[0])
            S = lambda pts: _plane(pos, e, pts)  # noqa: E731
            for sgn in (-1, 1):
                knee = (sgn * 0.17, 0.66)
                foot = (sgn * 0.15, 0.32 + 0.08 * sgn * math.sin(ag.phase))
                P.append((S(_seg2((sgn * 0.1, seat_y + 0.02), knee, 0.13, 0.11)), legs, orr, 0.0))
                P.append((S(_seg2(knee, foot, 0.11, 0.09)), legs, orr, 0.0))
            P.append(
                (
                    S(
                        [
                            [-0.15, seat_y],
                            [0.15, seat_y],
                            [0.2, seat_y + 0.5],
                            [0.07, seat_y + 0.55],
                            [-0.07, seat_y + 0.55],
                            [-0.2, seat_y + 0.5],
                        ]
                    ),
                    top,
                    orr,
                    0.0,
                )
            )
            for sgn in (-1, 1):
                P.append(
                    (
                        S(_seg2((sgn * 0.18, seat_y + 0.48), (sgn * 0.27, bar[0] + 0.02), 0.085, 0.07)),
                        _mul(top, 0.9),
                        orr,
                        0.0,
                    )
                )
            P.append(
                (
                    S([[-0.04, seat_y + 0.53], [0.04, seat_y + 0.53], [0.04, seat_y + 0.6], [-0.04, seat_y + 0.6]]),
                    skin,
                    orr,
                    0.0,
                )
            )
            P.append((S(_ring(10, 0.0, seat_y + 0.7, 0.1 if lk["wears_helmet"] else 0.09, 0.12)), head_col, orr, 0.0))
        else:
            # side view: a profile figure in the bike's plane
            e = (math.sin(phi), math.cos(phi))
            pos = (xc, 0.0, z)
            S = lambda pts: _plane(pos, e, pts)  # noqa: E731
            hip = (hip_l, seat_y + 0.03)
            sh = (hip_l + 0.28, seat_y + 0.5)
            for k, c in ((0, _mul(legs, 0.75)), (1, legs)):
                ang = ag.phase + k * math.pi
                foot = (0.0 + 0.16 * math.cos(ang), 0.3 + 0.16 * math.sin(ang))
                knee = ((hip[0] + foot[0]) / 2 + 0.2, (hip[1] + foot[1]) / 2 + 0.05)
                P.append((S(_seg2(hip, knee, 0.13, 0.1)), c, orr, 0.0))
                P.append((S(_seg2(knee, foot, 0.1, 0.08)), c, orr, 0.0))
            P.append((S(_seg2(hip, sh, 0.22, 0.2)), top, orr, 0.0))
            P.append((S(_seg2(sh, (bar[1], bar[0] + 0.02), 0.08, 0.065)), _mul(top, 0.9), orr, 0.0))
            P.append((S(_ring(10, sh[0] + 0.06, sh[1] + 0.17, 0.1, 0.12)), head_col, orr, 0.0))
        self.shadows.append(_local(xc, z, phi, [[-0.3, 0, -1.0], [0.3, 0, -1.0], [0.3, 0, 1.0], [-0.3, 0, 1.0]]))
        self.items.append(item)


def _rot_ring(n: int, cu: float, cv: float, r: float) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False) + np.pi / n
    return np.stack([cu + r * np.cos(t), cv + r * np.sin(t)], axis=1)


# --------------------------------------------------------------------------------------
# rasterisation


def _rasterise(objmap: np.ndarray, cam: _Camera, polys: list, base: int) -> np.ndarray:
    """Paint polygons in order into ``objmap`` with ids ``base + i``; returns their depth codes."""
    n_poly = len(polys)
    if n_poly == 0:
        return np.zeros(0, np.uint8)
    counts = np.fromiter((len(p[0]) for p in polys), np.int64, n_poly)
    V = np.concatenate([p[0] for p in polys]).astype(np.float64, copy=False)
    C = cam.to_cam(V)
    starts = np.zeros(n_poly, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    zc = C[:, 2]
    zmin = np.minimum.reduceat(zc, starts)
    zmax = np.maximum.reduceat(zc, starts)
    zmean = np.add.reduceat(zc, starts) / counts
    zsafe = np.where(zc > _NEAR * 0.5, zc, 1.0)
    u = cam.cx + cam.fx * C[:, 0] / zsafe
    v = cam.cy + cam.fy * C[:, 1] / zsafe
    W, H = cam.W, cam.H
    onscreen = (np.maximum.reduceat(u, starts) >= -2) & (np.minimum.reduceat(u, starts) <= W + 1)
    onscreen &= (np.maximum.reduceat(v, starts) >= -2) & (np.minimum.reduceat(v, starts) <= H + 1) & (zmax > _NEAR)
    UV = np.empty((len(u), 2), np.int32)
    UV[:, 0] = np.clip(np.rint(u * 16), -(2**30), 2**30)
    UV[:, 1] = np.clip(np.rint(v * 16), -(2**30), 2**30)
    clipped = (zmin < _NEAR).tolist()
    th_m = np.fromiter((p[3] for p in polys), np.float64, n_poly)
    thick = np.where(th_m > 0, np.maximum(1, np.rint(th_m * cam.fy / np.maximum(zmean, _NEAR))), 0).astype(int).tolist()
    fill, lines = cv2.fillPoly, cv2.polylines
    starts_l = starts.tolist()
    counts_l = counts.tolist()
    for i in np.flatnonzero(onscreen).tolist():
        o, n = starts_l[i], counts_l[i]
        if clipped[i]:
            if thick[i]:
                continue  # lines crossing the near plane are dropped
            pts = _clip_project(C[o : o + n], cam)
            if pts is None:
                continue
        else:
            pts = UV[o : o + n]
        if thick[i]:
            lines(objmap, [pts], False, base + i, thick[i], cv2.LINE_8, 4)
        else:
            fill(objmap, [pts], base + i, cv2.LINE_8, 4)
    return _encode_depth(np.maximum(zmean, _NEAR))


def _clip_project(P: np.ndarray, cam: _Camera) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a camera-space polygon against z >= near, then project."""
    out = []
    n = len(P)
    for i in range(n):
        a, b = P[i], P[(i + 1) % n]
        ina, inb = a[2] >= _NEAR, b[2] >= _NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (_NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    if len(out) < 3:
        return None
    Q = np.array(out)
    uv = np.empty((len(Q), 2), np.int32)
    uv[:, 0] = np.clip(np.rint((cam.cx + cam.fx * Q[:, 0] / Q[:, 2]) * 16), -(2**30), 2**30)
    uv[:, 1] = np.clip(np.rint((cam.cy + cam.fy * Q[:, 1] / Q[:, 2]) * 16), -(2**30), 2**30)
    return uv


# --------------------------------------------------------------------------------------
# noise fields (screen space), cached base noise cropped at random offsets


@functools.lru_cache(maxsize=4)
def _base_noise(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed noise textures (fine grain, blotchy mid/low frequency, cloud-scale) twice the frame."""
    g = np.random.default_rng(20240601)
    fine = g.standard_normal((h, w), dtype=np.float32)
    mid = cv2.resize(
        g.standard_normal((h // 4 + 2, w // 4 + 2), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR
    )
    lo = cv2.resize(
        g.standard_normal((h // 24 + 2, w // 24 + 2), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    coarse = (0.55 * mid / mid.std() + 0.85 * lo / lo.std()).astype(np.float32)
    cl = cv2.resize(
        g.standard_normal((h // 48 + 3, w // 64 + 3), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    cl = (cl / cl.std() + 0.35 * lo / lo.std()).astype(np.float32)
    for arr in (fine, coarse, cl):
        arr.setflags(write=False)
    return fine, coarse, cl


def _noise_fields(rng: np.random.Generator, H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fine, coarse, cl = _base_noise(2 * H, 2 * W)
    oy, ox = (int(v) for v in rng.integers(0, [H, W]))
    oy2, ox2 = (oy * 7 + 3) % H, (ox * 3 + 5) % W
    return fine[oy : oy + H, ox : ox + W], coarse[oy2 : oy2 + H, ox2 : ox2 + W], cl[oy : oy + H, ox2 : ox2 + W]


# --------------------------------------------------------------------------------------
# frame rendering


class _Rendered:
    __slots__ = (
        "_dcode",
        "cam",
        "emit_lut",
        "ground_base",
        "ground_end",
        "ground_rows",
        "image",
        "inst",
        "label",
        "obj",
        "obj_dcode",
        "pools",
        "sky_mask",
    )

    @property
    def dcode(self) -> np.ndarray:
        """(H, W) uint8 log-depth codes (255 = sky), computed on first use."""
        try:
            return self._dcode
        except AttributeError:
            pass
        d = np.take(self.obj_dcode, self.obj)
        g = (self.obj >= self.ground_base) & (self.obj < self.ground_end)
        np.copyto(d, np.broadcast_to(self.ground_rows[:, None], d.shape), where=g)
        self._dcode = d
        return d

    @property
    def depth(self) -> np.ndarray:
        """(H, W) float32 camera depth in metres (sky: 1e5)."""
        return np.take(_DEPTH_LUT, self.dcode)


def _render(
    scene: _Scene,
    cam_s: float,
    width: int,
    height: int,
    condition: str,
    tex_rng: np.random.Generator,
    cam_x: float,
    pitch_deg: float,
    yaw_deg: float,
) -> _Rendered:
    p = scene.p
    cam = _Camera(p, width, height, cam_x, pitch_deg, yaw_deg)
    H, W = height, width
    reg = _Registry()
    # object ids: [0, H) sky rows, [H, H + K) ground classes, then one per polygon
    g_sky = reg.new(SKY, tex=_TX_SKY)
    rows = np.arange(H, dtype=np.float32)
    elev = np.arctan2(cam.horizon - rows, cam.fy)  # angle above the horizon
    t = np.clip(elev / math.radians(40.0), 0.0, 1.0) ** 0.65
    hc, zc_ = np.array(scene.sky[0], np.float32), np.array(scene.sky[1], np.float32)
    sky_col = np.clip(hc[None, :] * (1 - t[:, None]) + zc_[None, :] * t[:, None], 0, 255).astype(np.uint8)
    objmap = np.empty((H, W), np.int32)
    objmap[:] = np.arange(H, dtype=np.int32)[:, None]

    ground = _draw_ground(objmap, cam, cam_s, scene, reg, base=H)
    n_ground = len(ground.objs)

    b = _Builder(scene, cam, cam_s, reg, condition)
    b.backdrop()
    c0 = math.floor((cam_s - _BEHIND) / _CHUNK)
    c1 = math.floor((cam_s + _AHEAD) / _CHUNK)
    for c in range(c0, c1 + 1):
        for desc in scene.chunk(c):
            b.static(desc)
    for ag in scene.agents:
        b.agent(ag)
    items = _paint_order(b.items, cam.cam_x)
    polys = [q for it in items for q in it.polys]
    poly_base = H + n_ground
    poly_d = _rasterise(objmap, cam, polys, poly_base)

    # lookup tables over object ids
    n_obj = poly_base + len(polys)
    grp = np.empty(n_obj, np.int64)
    grp[:H] = g_sky
    grp[H:poly_base] = [g for g, _ in ground.objs]
    grp[poly_base:] = np.fromiter((q[2] for q in polys), np.int64, len(polys))
    col = np.zeros((n_obj, 4), np.uint8)
    col[:H, :3] = sky_col
    col[H:poly_base, :3] = [c for _, c in ground.objs]
    if polys:
        col[poly_base:, :3] = np.array([q[1] for q in polys], np.uint8)
    dcode = np.empty(n_obj, np.uint8)
    dcode[:H] = 255
    dcode[H:poly_base] = 0  # ground: per-row depth, see _Rendered.dcode
    dcode[poly_base:] = poly_d
    g_label = np.array(reg.label, np.uint8)
    g_inst = np.array(reg.inst, np.uint16)
    amp = _TEX[np.array(reg.tex, np.int64)]

    label = np.take(g_label[grp], objmap)
    inst = np.take(g_inst[grp], objmap)
    fine, coarse, clouds = _noise_fields(tex_rng, H, W)
    f = np.take(amp[grp, 0], objmap)
    f *= fine
    f2 = np.take(amp[grp, 1], objmap)
    f2 *= coarse
    f += f2
    f += np.float32(1.0)
    # soft contact shadows on the ground, drawn at half resolution
    if b.shadows:
        shade = np.zeros((H // 2, W // 2), np.uint8)
        Cc = cam.to_cam(np.concatenate(b.shadows))
        zc = Cc[:, 2].reshape(-1, 4)
        u = (cam.cx + cam.fx * Cc[:, 0] / np.maximum(Cc[:, 2], _NEAR)).reshape(-1, 4) * 0.5
        v = (cam.cy + cam.fy * Cc[:, 1] / np.maximum(Cc[:, 2], _NEAR)).reshape(-1, 4) * 0.5
        ok = (zc.min(1) > _NEAR) & (u.max(1) >= 0) & (u.min(1) < W // 2) & (v.max(1) >= 0) & (v.min(1) < H // 2)
        UV = np.rint(np.stack([u, v], -1) * 16).astype(np.int32)
        for i in np.flatnonzero(ok).tolist():
            cv2.fillConvexPoly(shade, UV[i], 255, cv2.LINE_8, 4)
        sh = cv2.resize(cv2.GaussianBlur(shade, (0, 0), 1.5), (W, H), interpolation=cv2.INTER_LINEAR)
        is_ground = np.zeros(256, np.float32)
        is_ground[[ROAD, SIDEWALK, TERRAIN]] = 0.45 / 255.0
        f -= np.take(is_ground, label) * sh
    # global exposure / white balance jitter, applied with the texture in one multiply
    wb = 1.0 + tex_rng.uniform(-0.025, 0.025, 3) + tex_rng.uniform(-0.08, 0.08)
    f3 = cv2.merge([f * np.float32(w) for w in wb])
    flat = np.take(col.view(np.uint32)[:, 0], objmap).view(np.uint8).reshape(H, W, 4)
    image = cv2.multiply(cv2.cvtColor(flat, cv2.COLOR_RGBA2RGB), f3, dtype=cv2.CV_8U)
    sky_mask = objmap < H
    rh = min(H, max(0, int(math.ceil(cam.horizon)) + 2))
    if scene.cloudiness > 0.25 and rh > 0:
        cl = np.clip((clouds[:rh] - 1.0 + 1.0 * scene.cloudiness) * np.float32(0.45), 0.0, 0.75) * sky_mask[:rh]
        sub = image[:rh].astype(np.float32)
        sub += (np.float32(242.0) - sub) * _m3(cl)
        image[:rh] = sub.astype(np.uint8)
    out = _Rendered()
    out.image = image
    out.label = label
    out.inst = inst
    out.obj = objmap
    out.obj_dcode = dcode
    out.ground_base, out.ground_end, out.ground_rows = H, poly_base, ground.row_dcode
    emit = np.zeros((n_obj, 3), np.uint8)
    emit[:] = np.array(reg.emit, np.uint8)[grp]
    out.emit_lut = emit
    out.pools = b.pools
    out.cam = cam
    out.sky_mask = sky_mask
    return out


def _fmod(x: np.ndarray, period: float) -> np.ndarray:
    """Non-negative remainder (np.remainder is slow on float32)."""
    p = np.float32(period)
    return x - np.floor(x * np.float32(1.0 / period)) * p


class _Ground:
    __slots__ = ("objs", "row_dcode")


def _draw_ground(objmap: np.ndarray, cam: _Camera, cam_s: float, scene: _Scene, reg: _Registry, base: int) -> _Ground:
    """Road, markings, kerbs, sidewalks and verges, exactly per pixel from the ground geometry.

    Each pixel's ray is intersected with the road plane (y = 0) and the raised sidewalk plane
    (y = kerb height); the lateral road coordinate of the hit picks the ground band, and a
    ray that reaches the road plane beyond the kerb line but the raised plane inside it sees
    the kerb face.
    """
    lay = scene.lay
    H, W = cam.H, cam.W
    out = _Ground()
    out.objs = []
    out.row_dcode = np.full(H, 255, np.uint8)
    r0 = max(0, int(math.floor(cam.horizon)) + 1)
    if r0 >= H:
        return out
    f32 = np.float32
    rows = np.arange(r0, H, dtype=f32)
    bb = (rows - f32(cam.cy)) / f32(cam.fy)
    ydir = np.minimum(-bb * f32(cam.cp) - f32(cam.sp), f32(-1e-5))
    zd = -bb * f32(cam.sp) + f32(cam.cp)
    a = (np.arange(W, dtype=f32) - f32(cam.cx)) / f32(cam.fx)
    xa, za = f32(cam.cyw) * a, f32(-cam.syw) * a
    xz, zz = f32(cam.syw) * zd, f32(cam.cyw) * zd
    k = f32(0.5 * cam.curv)

    def plane(y: float):
        t = np.minimum((f32(y) - f32(cam.h)) / ydir, f32(5000.0))
        X = (xa[None, :] + xz[:, None]) * t[:, None]
        X += f32(cam.cam_x)
        Z = (za[None, :] + zz[:, None]) * t[:, None]
        if k != 0:
            X -= k * Z * Z
        return X, Z, t

    x0, Z0, t0 = plane(0.0)
    x1, Z1, _ = plane(scene.p.kerb_height_m)

    o_road = reg.new(ROAD, tex=_TX_ROAD)
    o_track = reg.new(ROAD, tex=_TX_ROAD)
    o_mw = reg.new(ROAD, tex=_TX_FLAT)
    o_my = reg.new(ROAD, tex=_TX_FLAT)
    o_kerb = reg.new(SIDEWALK, tex=_TX_SIDEWALK)
    o_terr = reg.new(TERRAIN, tex=_TX_TERRAIN)
    cols = {
        o_road: scene.asphalt,
        o_track: _mul(scene.asphalt, 0.92),
        o_mw: scene.marking_white,
        o_my: scene.marking_yellow,
        o_kerb: scene.kerb_col,
        o_terr: scene.terrain_col,
    }
    o_sw, o_joint = {}, {}
    for sign in (-1, 1):
        o_sw[sign] = reg.new(SIDEWALK, tex=_TX_SIDEWALK)
        o_joint[sign] = reg.new(SIDEWALK, tex=_TX_SIDEWALK)
        cols[o_sw[sign]] = scene.sidewalk_col[sign]
        cols[o_joint[sign]] = _mul(scene.sidewalk_col[sign], 0.8)

    # lateral bands across the whole road cross-section, left to right (on the raised plane)
    def band_obj(sign, kind):
        return o_sw[sign] if kind == "sidewalk" else o_terr

    edges: list[float] = []
    objs: list[int] = []
    L, R = lay.left, lay.right
    objs.append(band_obj(-1, L.beyond))
    for e, kind in reversed(L.bands):  # outermost band first
        edges.append(lay.xL - e)
        objs.append(band_obj(-1, kind))
    edges.append(lay.xL - 0.18)
    objs.append(o_kerb)
    edges.append(lay.xL)
    objs.append(o_road)
    edges.append(lay.xR)
    objs.append(o_kerb)
    edges.append(lay.xR + 0.18)
    for e, kind in R.bands:
        objs.append(band_obj(1, kind))
        edges.append(lay.xR + e)
    objs.append(band_obj(1, R.beyond))
    edges_a = np.array(edges, f32)
    g = np.array(objs, np.int32)[np.searchsorted(edges_a, x1, side="right")]
    road = (x0 >= f32(lay.xL)) & (x0 <= f32(lay.xR))
    # rays hitting the raised plane over the road but the road plane beyond the kerb: kerb face
    g[(g == o_road) & ~road] = o_kerb

    # lane markings and tyre tracks, packed into a small code looked up in one go
    lw = f32(lay.lw)
    q = np.rint(x0 / lw)
    d = np.abs(x0 - q * lw)
    j = np.clip(q + f32(lay.nb), 0, len(lay.line_types) - 1).astype(np.uint8)
    ltype = lay.line_types.astype(np.uint8)[j]
    ltype[(q < -lay.nb) | (q > lay.nf)] = 0
    s_abs = Z0 + f32(cam_s + lay.dash_phase)
    dash = _fmod(s_abs, lay.dash_period) < f32(lay.dash_len)
    code = ltype << 4
    code |= (d < 0.075).view(np.uint8)
    code |= ((d > 0.06) & (d < 0.2)).view(np.uint8) << 1
    code |= dash.view(np.uint8) << 2
    code |= ((d > 0.2 * lw) & (d < 0.36 * lw)).view(np.uint8) << 3
    mark_lut = np.full(128, o_road, np.int32)
    for c in range(128):
        t, single, double, dsh, track = c >> 4, c & 1, (c >> 1) & 1, (c >> 2) & 1, (c >> 3) & 1
        white = (t == 1 and single and dsh) or (t == 2 and single) or (t == 6 and double)
        yellow = (t == 5 and single and dsh) or (t == 3 and single) or (t == 4 and double)
        mark_lut[c] = o_mw if white else o_my if yellow else o_track if track else o_road
    m = mark_lut[code]
    # crosswalks and stop lines
    c0 = math.floor((cam_s - _BEHIND) / _CHUNK)
    c1 = math.floor((cam_s + _AHEAD) / _CHUNK)
    s_road = Z0 + f32(cam_s)
    for c in range(c0, c1 + 1):
        for desc in scene.chunk(c):
            if desc[0] != "crosswalk":
                continue
            cs0, cw = desc[1], desc[2]
            if cs0 + cw < cam_s + 0.5 or cs0 > cam_s + 150.0:
                continue
            near = (s_road >= f32(cs0 - 2.0)) & (s_road <= f32(cs0 + cw))
            rr = np.flatnonzero(near.any(axis=1))
            if not len(rr):
                continue
            sl = slice(rr[0], rr[-1] + 1)
            sr, xr = s_road[sl], x0[sl]
            zebra = (sr >= f32(cs0)) & (_fmod(xr - f32(lay.xL), 1.0) < 0.5)
            zebra &= (xr > f32(lay.lanes_left)) & (xr < f32(lay.lanes_right))
            stop = (sr <= f32(cs0 - 1.6)) & (xr > 0.1) & (xr < f32(lay.lanes_right))
            m[sl][near[sl] & (zebra | stop)] = o_mw
    np.copyto(g, m, where=road)
    # paving joints on the nearby sidewalk
    near_rows = np.flatnonzero(Z1.min(axis=1) < 25.0)
    if len(near_rows):
        sl = slice(near_rows[0], None)
        xs, zs_ = x1[sl], Z1[sl] + f32(cam_s)
        joint = (_fmod(xs, 0.5) < 0.035) | (_fmod(zs_, 0.5) < 0.035)
        gs = g[sl]
        for sign in (-1, 1):
            gs[joint & (gs == o_sw[sign])] = o_joint[sign]
    remap = np.zeros(len(reg.label), np.int32)
    for i, (grp, c) in enumerate(cols.items()):
        remap[grp] = base + i
        out.objs.append((grp, c))
    objmap[r0:] = np.take(remap, g)
    out.row_dcode[r0:] = _encode_depth(t0)
    return out


# --------------------------------------------------------------------------------------
# conditions (image only)


def _m3(a: np.ndarray) -> np.ndarray:
    """(H, W) float32 -> (H, W, 3) (same-shape numpy ops are far faster than channel broadcasts)."""
    return cv2.merge([a, a, a])


def _noise3(rng: np.random.Generator, H: int, W: int, common: float = 0.5) -> np.ndarray:
    """(H, W, 3) unit Gaussian sensor noise: crops of the cached field at random offsets."""
    fine = _base_noise(2 * H, 2 * W)[0]
    oy, ox = rng.integers(0, [H, W], size=(4, 2)).T
    ch = [fine[oy[i] : oy[i] + H, ox[i] : ox[i] + W] for i in range(4)]
    c = np.float32(common)
    return cv2.merge([ch[0] + c * ch[3], ch[1] + c * ch[3], ch[2] + c * ch[3]])


def _replace_sky(x: np.ndarray, r: _Rendered, rows_col: np.ndarray) -> np.ndarray:
    """Paint the sky pixels of float image ``x`` with a per-row colour (H, 3)."""
    rh = min(x.shape[0], max(0, int(math.ceil(r.cam.horizon)) + 2))
    if rh > 0:
        sky = cv2.resize(
            rows_col[:rh].astype(np.float32)[:, None, :], (x.shape[1], rh), interpolation=cv2.INTER_NEAREST
        )
        top = x[:rh]
        out = cv2.copyTo(sky, r.sky_mask[:rh].view(np.uint8), top)
        if out is not top:
            top[...] = out
    return x


def _apply_condition(r: _Rendered, condition: str, rng: np.random.Generator) -> np.ndarray:
    img = r.image
    H, W = img.shape[:2]
    f32 = np.float32
    if condition == "day":
        return img
    rows = np.arange(H, dtype=np.float32)
    elev = np.clip((r.cam.horizon - rows) / (0.7 * r.cam.fy), 0.0, 1.0)[:, None]
    if condition in ("night", "dusk"):
        base = img.astype(f32)
        emit_lut = np.zeros((len(r.emit_lut), 4), np.uint8)
        emit_lut[:, :3] = r.emit_lut
        emit = np.take(emit_lut.view(np.uint32)[:, 0], r.obj).view(np.uint8).reshape(H, W, 4)
        emit = cv2.cvtColor(emit, cv2.COLOR_RGBA2RGB).astype(f32)
        if condition == "night":
            amb = float(rng.uniform(0.08, 0.15))
            top = np.array([6, 8, 20], f32)
            bot = np.array([28, 26, 40], f32) * f32(rng.uniform(0.6, 1.6))
            skycol = bot * (1 - elev) + top * elev
            # street lamp pools on the ground
            cam = r.cam
            lightmap = np.zeros((H // 4, W // 4), f32)
            for lx, lz, rad in r.pools:
                if lz < 0.5 or lz > 90:
                    continue
                ring = _ring(16, lx, lz, rad, rad)
                Cc = cam.to_cam(np.stack([ring[:, 0], np.zeros(16), ring[:, 1]], 1))
                if Cc[:, 2].min() < _NEAR:
                    continue
                uv = np.stack([cam.cx + cam.fx * Cc[:, 0] / Cc[:, 2], cam.cy + cam.fy * Cc[:, 1] / Cc[:, 2]], 1) / 4.0
                cv2.fillPoly(lightmap, [np.rint(uv * 16).astype(np.int32)], 1.0 / (1.0 + lz / 40.0), cv2.LINE_8, 4)
            lightmap = cv2.GaussianBlur(lightmap, (0, 0), max(1.0, W / 200))
            lightmap = cv2.resize(lightmap, (W, H), interpolation=cv2.INTER_LINEAR)
            ground = np.zeros(256, f32)
            ground[[ROAD, SIDEWALK, TERRAIN]] = 0.55
            lightmap *= np.take(ground, r.label)
            # the ego headlights: a beam ahead, falling off with depth
            d = _DEPTH_LUT
            beam_lut = (0.5 / (1.0 + (d / 18.0) ** 2) * (d > 2.0) * (d < 200.0)).astype(f32)
            a = (np.arange(W, dtype=f32) - f32(cam.cx)) / f32(cam.fx)
            beam = np.take(beam_lut, r.dcode) * np.exp(-((a / 0.3) ** 2))[None, :]
            # ambient + lamp pools (warm) + headlights, as one per-channel gain
            gains = [lightmap * f32(w) + beam + f32(amb * t) for w, t in ((1.0, 0.8), (0.85, 0.9), (0.6, 1.25))]
            x = base * cv2.merge(gains)
            glow_gain, emit_gain = 1.2, 0.9
        else:
            x = cv2.multiply(
                base, tuple(float(v) for v in np.array([1.08, 0.86, 0.7]) * rng.uniform(0.45, 0.6)) + (0.0,)
            )
            top = np.array([50, 60, 110], f32)
            bot = np.array([250, 150, 80], f32) * f32(rng.uniform(0.8, 1.0))
            mid = np.array([190, 110, 130], f32)
            e2 = elev * 2.5
            skycol = np.where(
                e2 < 1, bot * (1 - e2) + mid * e2, mid * (2 - np.minimum(e2, 2)) + top * (np.minimum(e2, 2) - 1)
            )
            glow_gain, emit_gain = 1.2, 0.55
        x = _replace_sky(x, r, skycol)
        x = np.maximum(x, emit * f32(emit_gain))
        small = cv2.resize(emit, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
        glow = cv2.GaussianBlur(small, (0, 0), max(1.0, W / 256))
        x += cv2.resize(glow, (W, H), interpolation=cv2.INTER_LINEAR) * f32(glow_gain)
        if condition == "night":
            fine = _base_noise(2 * H, 2 * W)[0]
            oy, ox = (int(v) for v in rng.integers(0, [H, W]))
            x += _m3(fine[oy : oy + H, ox : ox + W] * f32(2.0))
    elif condition == "fog":
        vis = float(rng.uniform(25.0, 90.0))
        g = float(rng.uniform(180, 215))
        alpha = (1.0 - np.exp(-3.0 * _DEPTH_LUT / vis)).astype(f32)
        alpha[255] = 1.0
        a3 = _m3(np.take(alpha, r.dcode))
        x = img.astype(f32)
        x += (np.array([g * 0.98, g, g * 1.03], f32) - x) * a3
    elif condition == "rain":
        x = img.astype(f32)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(f32)
        k = f32(rng.uniform(0.6, 0.78))
        x = (x * f32(0.55) + _m3(gray) * f32(0.45)) * k
        vis = float(rng.uniform(120.0, 300.0))
        alpha = (1.0 - np.exp(-3.0 * _DEPTH_LUT / vis)).astype(f32)
        alpha[255] = 1.0
        x += (f32(rng.uniform(120, 160)) - x) * _m3(np.take(alpha, r.dcode))
        x = cv2.GaussianBlur(x, (3, 3), 0)
        streaks = np.zeros((H, W), f32)
        n = int(H * W / 900)
        ang = math.radians(float(rng.uniform(-20, 20)))
        ln = rng.uniform(0.03, 0.08, n) * H
        px = rng.uniform(0, W, n)
        py = rng.uniform(-0.05 * H, H, n)
        pts = np.stack([np.stack([px, py], 1), np.stack([px + math.sin(ang) * ln, py + math.cos(ang) * ln], 1)], 1)
        cv2.polylines(streaks, list(np.rint(pts * 16).astype(np.int32)), False, 1.0, 1, cv2.LINE_AA, 4)
        streaks = cv2.GaussianBlur(streaks, (0, 0), 0.7)
        x += _m3(streaks) * f32(rng.uniform(60, 110))
    elif condition == "noise":
        sigma = f32(rng.uniform(8.0, 22.0))
        x = img.astype(f32) + _noise3(rng, H, W) * sigma
    elif condition == "motion_blur":
        out = img
        if rng.random() < 0.6:
            # forward motion: zoom blur about the principal point (running average of scaled copies)
            strength = float(rng.uniform(0.02, 0.05))
            for i in range(1, 5):
                sc = 1.0 + strength * i / 4
                M = np.array([[sc, 0, (1 - sc) * r.cam.cx], [0, sc, (1 - sc) * r.cam.cy]], np.float32)
                warped = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                out = cv2.addWeighted(out, i / (i + 1), warped, 1.0 / (i + 1), 0.0)
        # camera shake / panning: a horizontal linear blur
        k = int(rng.integers(max(3, W // 90), max(5, W // 35)))
        return cv2.blur(out, (k, 1), borderType=cv2.BORDER_REFLECT)
    elif condition == "overexposed":
        g = float(rng.uniform(1.8, 2.7))
        off = float(rng.uniform(10, 40))
        out = cv2.convertScaleAbs(img, alpha=g, beta=off)
        small = cv2.resize(img, (W // 4, H // 4), interpolation=cv2.INTER_AREA).astype(f32) * f32(g) + f32(off - 255.0)
        bloom = cv2.GaussianBlur(np.maximum(small, 0), (0, 0), max(1.0, W / 600))
        bloom = cv2.resize(bloom, (W, H), interpolation=cv2.INTER_LINEAR)
        return cv2.add(out, np.clip(bloom * f32(0.5), 0, 255).astype(np.uint8))
    elif condition == "underexposed":
        g = float(rng.uniform(0.16, 0.35))
        gamma = float(rng.uniform(1.1, 1.4))
        lut = (255.0 * (np.arange(256) / 255.0) ** gamma * g).astype(f32)
        x = np.take(lut, img) + _noise3(rng, H, W) * f32(1.2)
    else:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    return np.clip(x, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# public API


def _check_size(width: int, height: int) -> None:
    if int(width) < 16 or int(height) < 16:
        raise ValueError(f"image size must be at least 16x16, got {width}x{height}")


def _check_condition(condition: str | None) -> None:
    if condition is not None and condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")


def _finish(r: _Rendered, condition: str, index: int, params: SceneParams, fx_rng) -> SyntheticFrame:
    image = _apply_condition(r, condition, fx_rng)
    return SyntheticFrame(
        image=image, label_ids=r.label, instance_ids=r.inst, condition=condition, index=int(index), params=params
    )


def generate_frame(
    seed: int, index: int, width: int = 1024, height: int = 512, condition: str | None = None
) -> SyntheticFrame:
    """Render one independent frame, fully determined by (seed, index, size, condition).

    ``condition=None`` draws the condition from (seed, index). The scene (layout, objects and
    their placement) does not depend on the condition or the image size: the same (seed,
    index) under different conditions has identical ground truth, and at another size only
    the level of detail of small objects differs.
    """
    _check_size(width, height)
    _check_condition(condition)
    seed, index = int(seed), int(index)
    if condition is None:
        condition = _choose(_rng(seed, index, _T_COND), CONDITIONS, _CONDITION_P.tolist())
    srng = _rng(seed, index, _T_SCENE)
    params = SceneParams.sample(srng, condition)
    scene = _Scene(params, (seed, index), _rng(seed, index, _T_AGENTS))
    scene.ensure_chunks(0.0, initial=True, agents_ahead=190.0)
    # pedestrians are caught at random phases of their stride
    for ag in scene.agents:
        if ag.kind == "person":
            ag.phase = float(srng.uniform(0, 2 * np.pi))
    r = _render(
        scene,
        0.0,
        int(width),
        int(height),
        condition,
        _rng(seed, index, _T_TEX),
        scene.lay.ego_x,
        params.pitch_deg,
        params.yaw_deg,
    )
    return _finish(r, condition, index, params, _rng(seed, index, _T_FX))


def generate_drive(
    seed: int, frames: int, width: int = 1024, height: int = 512, fps: float = 10.0, condition: str | None = None
) -> Iterator[SyntheticFrame]:
    """Yield ``frames`` consecutive frames of one coherent drive (frame ``index`` 0, 1, ...).

    The camera drives along its lane at the scene's speed (with a little suspension pitch and
    steering sway); the static world is fixed, traffic and pedestrians move and keep their
    instance ids while they are in view. Deterministic in (seed, frames, size, fps,
    condition); frame i does not depend on ``frames``.
    """
    _check_size(width, height)
    _check_condition(condition)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    seed = int(seed)
    if condition is None:
        condition = _choose(_rng(seed, _T_DRIVE, _T_COND), CONDITIONS, _CONDITION_P.tolist())
    params = SceneParams.sample(_rng(seed, _T_DRIVE, _T_SCENE), condition)
    scene = _Scene(params, (seed, 1 << 40), _rng(seed, _T_DRIVE, _T_AGENTS))
    scene.drive = True
    sim_rng = _rng(seed, _T_DRIVE, _T_AGENTS, 1)
    wob = _rng(seed, _T_DRIVE, 99).uniform(0, 2 * np.pi, 4)
    dt = 1.0 / float(fps)
    cam_s = 0.0
    tex_key = _rng(seed, _T_DRIVE, _T_TEX).integers(0, 2**62)

    def gen() -> Iterator[SyntheticFrame]:
        nonlocal cam_s
        scene.ensure_chunks(cam_s, initial=True)
        for i in range(int(frames)):
            t = i * dt
            pitch = params.pitch_deg + 0.25 * math.sin(2.1 * t + wob[0]) + 0.1 * math.sin(7.3 * t + wob[1])
            yaw = params.yaw_deg * 0.5 + 0.4 * math.sin(0.5 * t + wob[2])
            cam_x = scene.lay.ego_x + 0.2 * math.sin(0.3 * t + wob[3])
            # texture noise is fixed for the drive (it belongs to the surfaces, not the frame)
            r = _render(scene, cam_s, int(width), int(height), condition, _rng(int(tex_key)), cam_x, pitch, yaw)
            yield _finish(r, condition, i, params, _rng(seed, _T_DRIVE, _T_FX, i))
            cam_s += params.speed_mps * dt
            scene.step(dt, cam_s, params.speed_mps, sim_rng)
            scene.ensure_chunks(cam_s, initial=False)

    return gen()


def _stem(city: str, index: int) -> str:
    return f"{city}_000000_{int(index):06d}"


def write_cityscapes(out_dir, frames: Iterable[SyntheticFrame], city: str = "synth", split: str = "val") -> list[Path]:
    """Write frames in the Cityscapes layout; returns the image paths.

    ``out_dir/leftImg8bit/<split>/<city>/<city>_000000_<index>_leftImg8bit.png`` plus
    ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (8-bit), ``..._gtFine_instanceIds.png``
    (16-bit) and ``..._gtFine_color.png``; ``out_dir/conditions.json`` maps each frame stem to
    its condition (merged with an existing file).
    """
    out = Path(out_dir)
    img_dir = out / "leftImg8bit" / split / city
    gt_dir = out / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    cond_path = out / "conditions.json"
    conditions: dict[str, str] = {}
    if cond_path.is_file():
        try:
            conditions = dict(json.loads(cond_path.read_text()))
        except (ValueError, TypeError):
            conditions = {}
    paths: list[Path] = []
    for fr in frames:
        stem = _stem(city, fr.index)
        ip = img_dir / f"{stem}_leftImg8bit.png"
        writes = [
            (ip, cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR)),
            (gt_dir / f"{stem}_gtFine_labelIds.png", np.ascontiguousarray(fr.label_ids, np.uint8)),
            (gt_dir / f"{stem}_gtFine_instanceIds.png", np.ascontiguousarray(fr.instance_ids, np.uint16)),
            (gt_dir / f"{stem}_gtFine_color.png", cv2.cvtColor(colorize_label_ids(fr.label_ids), cv2.COLOR_RGB2BGR)),
        ]
        for path, arr in writes:
            if not cv2.imwrite(str(path), arr):
                raise OSError(f"cannot write {path}")
        conditions[stem] = fr.condition
        paths.append(ip)
    tmp = cond_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(conditions.items())), indent=1) + "\n")
    tmp.replace(cond_path)
    return paths
