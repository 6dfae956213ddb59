"""The ground pass: road, markings, kerbs, sidewalks and verges, exact per pixel.

Each pixel's ray below the horizon is intersected with the road plane (y = 0) and the raised
sidewalk plane (y = kerb height); the lateral road coordinate of the hit picks the ground
band, and a ray that reaches the road plane beyond the kerb line but the raised plane inside
it sees the kerb face. The arithmetic is float32 throughout (the frames depend on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.camera import SKY_DEPTH_CODE, Camera, encode_depth
from seg_perception.synthetic.colours import Colour, scale_colour
from seg_perception.synthetic.label_ids import ROAD, SIDEWALK, TERRAIN
from seg_perception.synthetic.layout import (
    KERB_WIDTH_M,
    LINE_DASHED_WHITE,
    LINE_DASHED_YELLOW,
    LINE_DOUBLE_WHITE,
    LINE_DOUBLE_YELLOW,
    LINE_SOLID_WHITE,
    LINE_SOLID_YELLOW,
)
from seg_perception.synthetic.registry import (
    TEXTURE_FLAT,
    TEXTURE_ROAD,
    TEXTURE_SIDEWALK,
    TEXTURE_TERRAIN,
    ObjectRegistry,
)
from seg_perception.synthetic.scene import Scene, chunk_range
from seg_perception.synthetic.world import Crosswalk

Float32Array = npt.NDArray[np.float32]
_MAX_RAY_T = 5000.0  # rays nearly parallel to the ground stop here
_PAVING_JOINTS_WITHIN_M = 25.0
_CROSSWALKS_WITHIN_M = 150.0


@dataclass
class GroundPaint:
    """What the ground pass painted: ``groups`` (group, colour) for the object ids
    ``first_id + i``, and the (H,) uint8 depth code of each image row's road plane (255 above
    the horizon)."""

    groups: list[tuple[int, Colour]] = field(default_factory=list)
    row_depth_codes: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))


def _fmod(x: Float32Array, period: float) -> Float32Array:
    """Non-negative remainder (np.remainder is slow on float32)."""
    period32 = np.float32(period)
    remainder: Float32Array = x - np.floor(x * np.float32(1.0 / period)) * period32
    return remainder


def _marking_lut(road: int, track: int, white: int, yellow: int) -> npt.NDArray[np.int32]:
    """Group per 7-bit marking code: bits 4-6 the line type at the nearest lane boundary, bit 0
    within a single line, bit 1 within one of a double line, bit 2 on a dash, bit 3 on a tyre track."""
    lut = np.full(128, road, np.int32)
    for code in range(128):
        line = code >> 4
        single, double, dash, on_track = code & 1, (code >> 1) & 1, (code >> 2) & 1, (code >> 3) & 1
        is_white = (
            (line == LINE_DASHED_WHITE and single and dash)
            or (line == LINE_SOLID_WHITE and single)
            or (line == LINE_DOUBLE_WHITE and double)
        )
        is_yellow = (
            (line == LINE_DASHED_YELLOW and single and dash)
            or (line == LINE_SOLID_YELLOW and single)
            or (line == LINE_DOUBLE_YELLOW and double)
        )
        lut[code] = white if is_white else yellow if is_yellow else track if on_track else road
    return lut


def draw_ground(
    object_ids: npt.NDArray[np.int32],
    camera: Camera,
    camera_s: float,
    scene: Scene,
    registry: ObjectRegistry,
    first_id: int,
) -> GroundPaint:
    """Paint the ground below the horizon into the (H, W) int32 ``object_ids`` map, with ids from
    ``first_id`` on (one per ground group, see :class:`GroundPaint`)."""
    layout = scene.layout
    height, width = camera.height, camera.width
    out = GroundPaint(row_depth_codes=np.full(height, SKY_DEPTH_CODE, np.uint8))
    first_row = max(0, math.floor(camera.horizon_row) + 1)
    if first_row >= height:
        return out
    f32 = np.float32
    # ray directions: per row (pitch) and per column (yaw), combined by outer sums
    rows = np.arange(first_row, height, dtype=f32)
    row_slope = (rows - f32(camera.cy)) / f32(camera.fy)
    ray_y = np.minimum(-row_slope * f32(camera.cos_pitch) - f32(camera.sin_pitch), f32(-1e-5))
    ray_forward = -row_slope * f32(camera.sin_pitch) + f32(camera.cos_pitch)
    column_slope = (np.arange(width, dtype=f32) - f32(camera.cx)) / f32(camera.fx)
    column_x, column_z = f32(camera.cos_yaw) * column_slope, f32(-camera.sin_yaw) * column_slope
    row_x, row_z = f32(camera.sin_yaw) * ray_forward, f32(camera.cos_yaw) * ray_forward
    half_curvature = f32(0.5 * camera.curvature)

    def hit_plane(y: float) -> tuple[Float32Array, Float32Array, Float32Array]:
        """Road x, camera-relative z and ray parameter where each ray meets the plane at height y."""
        t = np.minimum((f32(y) - f32(camera.height_m)) / ray_y, f32(_MAX_RAY_T))
        x = (column_x[None, :] + row_x[:, None]) * t[:, None]
        x += f32(camera.lateral_x)
        z = (column_z[None, :] + row_z[:, None]) * t[:, None]
        if half_curvature != 0:
            x -= half_curvature * z * z  # unbend: road x of the hit
        return x, z, t

    road_x, road_z, road_t = hit_plane(0.0)
    raised_x, raised_z, _ = hit_plane(scene.params.kerb_height_m)

    road = registry.add(ROAD, texture=TEXTURE_ROAD)
    track = registry.add(ROAD, texture=TEXTURE_ROAD)
    white = registry.add(ROAD, texture=TEXTURE_FLAT)
    yellow = registry.add(ROAD, texture=TEXTURE_FLAT)
    kerb = registry.add(SIDEWALK, texture=TEXTURE_SIDEWALK)
    terrain = registry.add(TERRAIN, texture=TEXTURE_TERRAIN)
    colours = {
        road: scene.asphalt,
        track: scale_colour(scene.asphalt, 0.92),
        white: scene.marking_white,
        yellow: scene.marking_yellow,
        kerb: scene.kerb_colour,
        terrain: scene.terrain_colour,
    }
    sidewalk, joint = {}, {}
    for sign in (-1, 1):
        sidewalk[sign] = registry.add(SIDEWALK, texture=TEXTURE_SIDEWALK)
        joint[sign] = registry.add(SIDEWALK, texture=TEXTURE_SIDEWALK)
        colours[sidewalk[sign]] = scene.sidewalk_colours[sign]
        colours[joint[sign]] = scale_colour(scene.sidewalk_colours[sign], 0.8)

    def band_group(sign: int, surface: str) -> int:
        return sidewalk[sign] if surface == "sidewalk" else terrain

    # lateral bands across the whole road cross-section, left to right (on the raised plane):
    # groups[i] lies between edges[i - 1] and edges[i]
    edges: list[float] = []
    groups: list[int] = []
    left, right = layout.left, layout.right
    groups.append(band_group(-1, left.beyond_surface))
    for band in reversed(left.bands):  # outermost band first
        edges.append(layout.kerb_left_x - band.outer_m)
        groups.append(band_group(-1, band.surface))
    edges.append(layout.kerb_left_x - KERB_WIDTH_M)
    groups.append(kerb)
    edges.append(layout.kerb_left_x)
    groups.append(road)
    edges.append(layout.kerb_right_x)
    groups.append(kerb)
    edges.append(layout.kerb_right_x + KERB_WIDTH_M)
    for band in right.bands:
        groups.append(band_group(1, band.surface))
        edges.append(layout.kerb_right_x + band.outer_m)
    groups.append(band_group(1, right.beyond_surface))
    ground = np.array(groups, np.int32)[np.searchsorted(np.array(edges, f32), raised_x, side="right")]
    on_road = (road_x >= f32(layout.kerb_left_x)) & (road_x <= f32(layout.kerb_right_x))
    # rays hitting the raised plane over the road but the road plane beyond the kerb: kerb face
    ground[(ground == road) & ~on_road] = kerb

    markings = _lane_markings(road_x, road_z, camera_s, scene, _marking_lut(road, track, white, yellow))
    _paint_crossings(markings, road_x, road_z, camera_s, scene, white)
    np.copyto(ground, markings, where=on_road)
    # paving joints on the nearby sidewalk
    near_rows = np.flatnonzero(raised_z.min(axis=1) < _PAVING_JOINTS_WITHIN_M)
    if len(near_rows):
        rows_slice = slice(near_rows[0], None)
        joint_x, joint_s = raised_x[rows_slice], raised_z[rows_slice] + f32(camera_s)
        on_joint = (_fmod(joint_x, 0.5) < 0.035) | (_fmod(joint_s, 0.5) < 0.035)
        near_ground = ground[rows_slice]
        for sign in (-1, 1):
            near_ground[on_joint & (near_ground == sidewalk[sign])] = joint[sign]
    # the groups get consecutive object ids from first_id
    remap = np.zeros(len(registry.labels), np.int32)
    for i, (group, colour) in enumerate(colours.items()):
        remap[group] = first_id + i
        out.groups.append((group, colour))
    object_ids[first_row:] = np.take(remap, ground)
    out.row_depth_codes[first_row:] = encode_depth(road_t)
    return out


def _lane_markings(
    road_x: Float32Array, road_z: Float32Array, camera_s: float, scene: Scene, marking_lut: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Groups of the road surface: asphalt, tyre tracks, lane lines; packed into a 7-bit code
    per pixel (see :func:`_marking_lut`) looked up in one go."""
    layout = scene.layout
    f32 = np.float32
    lane_width = f32(layout.lane_width)
    boundary = np.rint(road_x / lane_width)  # nearest lane boundary
    off_line = np.abs(road_x - boundary * lane_width)
    boundary_index = np.clip(boundary + f32(layout.lanes_backward), 0, len(layout.line_types) - 1).astype(np.uint8)
    line_type = layout.line_types.astype(np.uint8)[boundary_index]
    line_type[(boundary < -layout.lanes_backward) | (boundary > layout.lanes_forward)] = 0
    s = road_z + f32(camera_s + layout.dash_phase)
    dash = _fmod(s, layout.dash_period) < f32(layout.dash_length)
    code = line_type << 4
    code |= (off_line < 0.075).view(np.uint8)
    code |= ((off_line > 0.06) & (off_line < 0.2)).view(np.uint8) << 1
    code |= dash.view(np.uint8) << 2
    code |= ((off_line > 0.2 * lane_width) & (off_line < 0.36 * lane_width)).view(np.uint8) << 3
    markings: npt.NDArray[np.int32] = marking_lut[code]
    return markings


def _paint_crossings(
    markings: npt.NDArray[np.int32],
    road_x: Float32Array,
    road_z: Float32Array,
    camera_s: float,
    scene: Scene,
    white: int,
) -> None:
    """Zebra stripes of the crosswalks ahead and the stop line before them, into ``markings``."""
    layout = scene.layout
    f32 = np.float32
    road_s = road_z + f32(camera_s)
    for chunk in chunk_range(camera_s):
        for crosswalk in scene.chunk(chunk):
            if not isinstance(crosswalk, Crosswalk):
                continue
            start, length = crosswalk.start_s, crosswalk.length_m
            if start + length < camera_s + 0.5 or start > camera_s + _CROSSWALKS_WITHIN_M:
                continue
            near = (road_s >= f32(start - 2.0)) & (road_s <= f32(start + length))
            rows = np.flatnonzero(near.any(axis=1))
            if not len(rows):
                continue
            band = slice(rows[0], rows[-1] + 1)
            s, x = road_s[band], road_x[band]
            zebra = (s >= f32(start)) & (_fmod(x - f32(layout.kerb_left_x), 1.0) < 0.5)
            zebra &= (x > f32(layout.lanes_left_x)) & (x < f32(layout.lanes_right_x))
            stop = (s <= f32(start - 1.6)) & (x > 0.1) & (x < f32(layout.lanes_right_x))
            markings[band][near[band] & (zebra | stop)] = white
