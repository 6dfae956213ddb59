"""Rendering one frame of a scene: sky, ground, objects, textures and shadows (daylight image).

Every pixel holds an object id: ids [0, H) are the sky of each image row, then one per ground
group, then one per polygon in paint order. Lookup tables over the ids give the label ids,
instance ids, colours, depth codes and night-time emission; imaging conditions are applied
later (:mod:`seg_perception.synthetic.conditions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.builder import SceneBuilder
from seg_perception.synthetic.camera import DEPTH_LUT, NEAR_M, SKY_DEPTH_CODE, Camera
from seg_perception.synthetic.ground import draw_ground
from seg_perception.synthetic.items import LampPool, paint_order
from seg_perception.synthetic.label_ids import ROAD, SIDEWALK, SKY, TERRAIN
from seg_perception.synthetic.noise import texture_fields
from seg_perception.synthetic.raster import rasterise
from seg_perception.synthetic.registry import TEXTURE_AMPLITUDES, TEXTURE_SKY, ObjectRegistry
from seg_perception.synthetic.scene import Scene, chunk_range

_SKY_GRADIENT_DEG = 40.0  # the sky reaches its zenith colour this far above the horizon
_SHADOW_DEPTH = 0.45  # ground shadows darken by up to this fraction
_CLOUD_WHITE = 242.0


def merge3(channel: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(H, W) float32 -> (H, W, 3) (same-shape numpy ops are far faster than channel broadcasts)."""
    # OpenCV keeps the float32 dtype; its stubs only say "an array"
    return cast(npt.NDArray[np.float32], cv2.merge([channel, channel, channel]))


@dataclass(eq=False)
class RenderedFrame:
    """The daylight render of a frame and what the imaging conditions need from it.

    ``image`` (H, W, 3) uint8 RGB; ``label_ids`` (H, W) uint8; ``instance_ids`` (H, W) uint16;
    ``object_ids`` (H, W) int32 (see the module docstring); ``object_depth_codes`` and
    ``emission_lut`` are per object id ((N,) uint8 and (N, 3) uint8); ground ids
    [ground_first_id, ground_end_id) take their depth from ``ground_row_depth_codes`` (H,) by
    row; ``sky_mask`` (H, W) bool.
    """

    image: npt.NDArray[np.uint8]
    label_ids: npt.NDArray[np.uint8]
    instance_ids: npt.NDArray[np.uint16]
    object_ids: npt.NDArray[np.int32]
    object_depth_codes: npt.NDArray[np.uint8]
    ground_first_id: int
    ground_end_id: int
    ground_row_depth_codes: npt.NDArray[np.uint8]
    emission_lut: npt.NDArray[np.uint8]
    lamp_pools: list[LampPool]
    camera: Camera
    sky_mask: npt.NDArray[np.bool_]
    _depth_codes: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    @property
    def depth_codes(self) -> npt.NDArray[np.uint8]:
        """(H, W) uint8 log-depth codes (255 = sky), computed on first use."""
        if self._depth_codes is None:
            codes = np.take(self.object_depth_codes, self.object_ids)
            is_ground = (self.object_ids >= self.ground_first_id) & (self.object_ids < self.ground_end_id)
            np.copyto(codes, np.broadcast_to(self.ground_row_depth_codes[:, None], codes.shape), where=is_ground)
            self._depth_codes = codes
        return self._depth_codes

    @property
    def depth(self) -> npt.NDArray[np.float32]:
        """(H, W) float32 camera depth in metres (sky: 1e5)."""
        return np.take(DEPTH_LUT, self.depth_codes)


def render(
    scene: Scene,
    camera_s: float,
    width: int,
    height: int,
    condition: str,
    texture_rng: np.random.Generator,
    camera_x: float,
    pitch_deg: float,
    yaw_deg: float,
) -> RenderedFrame:
    """Render ``scene`` from arc position ``camera_s`` with the camera at road x ``camera_x``,
    ``pitch_deg`` and ``yaw_deg``; ``texture_rng`` places the texture noise and draws the white
    balance (``condition`` only switches lights on)."""
    camera = Camera(scene.params, width, height, camera_x, pitch_deg, yaw_deg)
    registry = ObjectRegistry()
    sky_group = registry.add(SKY, texture=TEXTURE_SKY)
    sky_colours = _sky_gradient(scene, camera)
    object_ids = np.empty((height, width), np.int32)
    object_ids[:] = np.arange(height, dtype=np.int32)[:, None]  # every pixel starts as its row's sky

    ground = draw_ground(object_ids, camera, camera_s, scene, registry, first_id=height)
    builder = SceneBuilder(scene, camera, camera_s, registry, condition)
    builder.add_backdrop()
    for chunk in chunk_range(camera_s):
        for static in scene.chunk(chunk):
            builder.add_static(static)
    for agent in scene.agents:
        builder.add_agent(agent)
    polygons = [polygon for item in paint_order(builder.items, camera.lateral_x) for polygon in item.polygons]
    first_polygon_id = height + len(ground.groups)
    polygon_depth_codes = rasterise(object_ids, camera, polygons, first_polygon_id)

    # lookup tables over object ids
    n_ids = first_polygon_id + len(polygons)
    group_of = np.empty(n_ids, np.int64)
    group_of[:height] = sky_group
    group_of[height:first_polygon_id] = [group for group, _ in ground.groups]
    group_of[first_polygon_id:] = np.fromiter((polygon.group for polygon in polygons), np.int64, len(polygons))
    colour_of = np.zeros((n_ids, 4), np.uint8)  # RGBA, so that a pixel's colour is one uint32 lookup
    colour_of[:height, :3] = sky_colours
    colour_of[height:first_polygon_id, :3] = [colour for _, colour in ground.groups]
    if polygons:
        colour_of[first_polygon_id:, :3] = np.array([polygon.colour for polygon in polygons], np.uint8)
    depth_code_of = np.empty(n_ids, np.uint8)
    depth_code_of[:height] = SKY_DEPTH_CODE
    depth_code_of[height:first_polygon_id] = 0  # ground: per-row depth, see RenderedFrame.depth_codes
    depth_code_of[first_polygon_id:] = polygon_depth_codes
    group_labels = np.array(registry.labels, np.uint8)
    group_instances = np.array(registry.instances, np.uint16)
    amplitudes = TEXTURE_AMPLITUDES[np.array(registry.textures, np.int64)]

    label_ids = np.take(group_labels[group_of], object_ids)
    instance_ids = np.take(group_instances[group_of], object_ids)
    fine, coarse, clouds = texture_fields(texture_rng, height, width)
    # brightness factor per pixel: 1 + fine and coarse noise at the amplitudes of its texture class
    gain = np.take(amplitudes[group_of, 0], object_ids)
    gain *= fine
    coarse_gain = np.take(amplitudes[group_of, 1], object_ids)
    coarse_gain *= coarse
    gain += coarse_gain
    gain += np.float32(1.0)
    if builder.shadows:
        gain -= _shadow_map(builder.shadows, camera, label_ids)
    # global exposure / white balance jitter, applied with the texture in one multiply
    white_balance = 1.0 + texture_rng.uniform(-0.025, 0.025, 3) + texture_rng.uniform(-0.08, 0.08)
    gain3 = cv2.merge([gain * np.float32(factor) for factor in white_balance])
    flat = np.take(colour_of.view(np.uint32)[:, 0], object_ids).view(np.uint8).reshape(height, width, 4)
    image = cast(npt.NDArray[np.uint8], cv2.multiply(cv2.cvtColor(flat, cv2.COLOR_RGBA2RGB), gain3, dtype=cv2.CV_8U))
    sky_mask = object_ids < height
    _add_clouds(image, clouds, sky_mask, scene.cloudiness, camera)
    emission = np.zeros((n_ids, 3), np.uint8)
    emission[:] = np.array(registry.emissions, np.uint8)[group_of]
    return RenderedFrame(
        image=image,
        label_ids=label_ids,
        instance_ids=instance_ids,
        object_ids=object_ids,
        object_depth_codes=depth_code_of,
        ground_first_id=height,
        ground_end_id=first_polygon_id,
        ground_row_depth_codes=ground.row_depth_codes,
        emission_lut=emission,
        lamp_pools=builder.lamp_pools,
        camera=camera,
        sky_mask=sky_mask,
    )


def _sky_gradient(scene: Scene, camera: Camera) -> npt.NDArray[np.uint8]:
    """(H, 3) uint8 sky colour per image row: horizon colour to zenith colour with elevation."""
    rows = np.arange(camera.height, dtype=np.float32)
    elevation = np.arctan2(camera.horizon_row - rows, camera.fy)  # angle above the horizon
    t = np.clip(elevation / math.radians(_SKY_GRADIENT_DEG), 0.0, 1.0) ** 0.65
    horizon, zenith = np.array(scene.sky_horizon, np.float32), np.array(scene.sky_zenith, np.float32)
    gradient = horizon[None, :] * (1 - t[:, None]) + zenith[None, :] * t[:, None]
    colours: npt.NDArray[np.uint8] = np.clip(gradient, 0, 255).astype(np.uint8)
    return colours


def _shadow_map(
    shadows: list[npt.NDArray[np.float64]], camera: Camera, label_ids: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float32]:
    """(H, W) float32 darkening of the ground under objects: the shadow quads drawn at half
    resolution, blurred, applied to road, sidewalk and terrain pixels only."""
    height, width = camera.height, camera.width
    shade = np.zeros((height // 2, width // 2), np.uint8)
    cam_points = camera.to_camera(np.concatenate(shadows))
    depth = cam_points[:, 2].reshape(-1, 4)
    u = (camera.cx + camera.fx * cam_points[:, 0] / np.maximum(cam_points[:, 2], NEAR_M)).reshape(-1, 4) * 0.5
    v = (camera.cy + camera.fy * cam_points[:, 1] / np.maximum(cam_points[:, 2], NEAR_M)).reshape(-1, 4) * 0.5
    shown = (depth.min(1) > NEAR_M) & (u.max(1) >= 0) & (u.min(1) < width // 2)
    shown &= (v.max(1) >= 0) & (v.min(1) < height // 2)
    quads = np.rint(np.stack([u, v], -1) * 16).astype(np.int32)
    for i in np.flatnonzero(shown).tolist():
        cv2.fillConvexPoly(shade, quads[i], 255, cv2.LINE_8, 4)
    blurred = cv2.resize(cv2.GaussianBlur(shade, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_LINEAR)
    is_ground = np.zeros(256, np.float32)
    is_ground[[ROAD, SIDEWALK, TERRAIN]] = _SHADOW_DEPTH / 255.0
    darkening: npt.NDArray[np.float32] = np.take(is_ground, label_ids) * blurred
    return darkening


def _add_clouds(
    image: npt.NDArray[np.uint8],
    clouds: npt.NDArray[np.float32],
    sky_mask: npt.NDArray[np.bool_],
    cloudiness: float,
    camera: Camera,
) -> None:
    """Whiten the sky pixels of ``image`` (in place) where the cloud noise exceeds the scene's cloudiness."""
    height = image.shape[0]
    sky_rows = min(height, max(0, math.ceil(camera.horizon_row) + 2))
    if cloudiness > 0.25 and sky_rows > 0:
        cover = np.clip((clouds[:sky_rows] - 1.0 + 1.0 * cloudiness) * np.float32(0.45), 0.0, 0.75)
        cover = cover * sky_mask[:sky_rows]
        top = image[:sky_rows].astype(np.float32)
        top += (np.float32(_CLOUD_WHITE) - top) * merge3(cover)
        image[:sky_rows] = top.astype(np.uint8)
