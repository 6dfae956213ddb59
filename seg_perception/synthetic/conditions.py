"""Imaging conditions: they change the image of a rendered frame, never its ground truth.

Each condition is a function of the daylight render and the frame's effects stream, found
through :data:`_EFFECTS`; the draws of each happen in a fixed order (frames are reproducible).
Images are (H, W, 3) uint8 RGB; intermediate images are float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.camera import DEPTH_LUT, NEAR_M, SKY_DEPTH_CODE
from seg_perception.synthetic.geometry import ellipse
from seg_perception.synthetic.label_ids import ROAD, SIDEWALK, TERRAIN
from seg_perception.synthetic.noise import fine_noise, sensor_noise
from seg_perception.synthetic.params import CONDITIONS
from seg_perception.synthetic.render import RenderedFrame, merge3

Image = npt.NDArray[np.uint8]
Float32Array = npt.NDArray[np.float32]
f32 = np.float32


def apply_condition(frame: RenderedFrame, condition: str, rng: np.random.Generator) -> Image:
    """The image of ``frame`` under ``condition`` (one of :data:`CONDITIONS`), with draws from ``rng``."""
    effect = _EFFECTS.get(condition)
    if effect is None:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    return effect(frame, rng)


def _to_uint8(x: Float32Array) -> Image:
    return np.clip(x, 0, 255).astype(np.uint8)


# OpenCV returns arrays of its input's dtype; its stubs only say "an array" (of any number type).
def _as_float32(result: object) -> Float32Array:
    return cast(Float32Array, result)


def _as_image(result: object) -> Image:
    return cast(Image, result)


def _day(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    return frame.image


def _elevation(frame: RenderedFrame) -> Float32Array:
    """(H, 1) float32 elevation above the horizon per row, 0 at the horizon to 1 at 0.7 * fy rows above."""
    rows = np.arange(frame.image.shape[0], dtype=np.float32)
    elevation: Float32Array = np.clip((frame.camera.horizon_row - rows) / (0.7 * frame.camera.fy), 0.0, 1.0)[:, None]
    return elevation


def _replace_sky(image: Float32Array, frame: RenderedFrame, row_colours: Float32Array) -> Float32Array:
    """Paint the sky pixels of float image ``image`` (in place) with a colour per row ((H, 3))."""
    sky_rows = min(image.shape[0], max(0, math.ceil(frame.camera.horizon_row) + 2))
    if sky_rows > 0:
        sky = cv2.resize(
            row_colours[:sky_rows].astype(np.float32)[:, None, :],
            (image.shape[1], sky_rows),
            interpolation=cv2.INTER_NEAREST,
        )
        top = image[:sky_rows]
        out = cv2.copyTo(sky, frame.sky_mask[:sky_rows].view(np.uint8), top)
        if out is not top:
            top[...] = out
    return image


def _emission(frame: RenderedFrame) -> Float32Array:
    """(H, W, 3) float32 light emitted by each pixel (lamps, lit windows) at night."""
    height, width = frame.image.shape[:2]
    lut = np.zeros((len(frame.emission_lut), 4), np.uint8)
    lut[:, :3] = frame.emission_lut
    rgba = np.take(lut.view(np.uint32)[:, 0], frame.object_ids).view(np.uint8).reshape(height, width, 4)
    emission: Float32Array = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB).astype(f32)
    return emission


def _lamp_light(frame: RenderedFrame) -> Float32Array:
    """(H, W) float32 light of the street lamp pools on the ground (road, sidewalk, terrain)."""
    height, width = frame.image.shape[:2]
    camera = frame.camera
    light = np.zeros((height // 4, width // 4), f32)  # drawn at quarter resolution
    for pool in frame.lamp_pools:
        if pool.z < 0.5 or pool.z > 90:
            continue
        ring = ellipse(16, pool.x, pool.z, pool.radius_m, pool.radius_m)
        cam_points = camera.to_camera(np.stack([ring[:, 0], np.zeros(16), ring[:, 1]], 1))
        if cam_points[:, 2].min() < NEAR_M:
            continue
        u = camera.cx + camera.fx * cam_points[:, 0] / cam_points[:, 2]
        v = camera.cy + camera.fy * cam_points[:, 1] / cam_points[:, 2]
        uv = np.stack([u, v], 1) / 4.0
        intensity = 1.0 / (1.0 + pool.z / 40.0)
        cv2.fillPoly(light, [np.rint(uv * 16).astype(np.int32)], intensity, cv2.LINE_8, 4)
    light = _as_float32(cv2.GaussianBlur(light, (0, 0), max(1.0, width / 200)))
    light = _as_float32(cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR))
    ground = np.zeros(256, f32)
    ground[[ROAD, SIDEWALK, TERRAIN]] = 0.55
    light *= np.take(ground, frame.label_ids)
    return light


def _headlights(frame: RenderedFrame) -> Float32Array:
    """(H, W) float32 light of the ego headlights: a beam ahead, falling off with depth."""
    width = frame.image.shape[1]
    depth = DEPTH_LUT
    beam_lut = (0.5 / (1.0 + (depth / 18.0) ** 2) * (depth > 2.0) * (depth < 200.0)).astype(f32)
    column_slope = (np.arange(width, dtype=f32) - f32(frame.camera.cx)) / f32(frame.camera.fx)
    beam: Float32Array = np.take(beam_lut, frame.depth_codes) * np.exp(-((column_slope / 0.3) ** 2))[None, :]
    return beam


def _night(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """Dark ambient light, lamp pools, headlights, glowing lamps and windows, sensor noise."""
    base = frame.image.astype(f32)
    emission = _emission(frame)
    elevation = _elevation(frame)
    ambient = float(rng.uniform(0.08, 0.15))
    top = np.array([6, 8, 20], f32)
    bottom = np.array([28, 26, 40], f32) * f32(rng.uniform(0.6, 1.6))
    sky = bottom * (1 - elevation) + top * elevation
    lamps = _lamp_light(frame)
    beam = _headlights(frame)
    # ambient + lamp pools (warm) + headlights, as one per-channel gain
    channel_light = ((1.0, 0.8), (0.85, 0.9), (0.6, 1.25))  # (lamp weight, ambient tint) per channel
    gains = [lamps * f32(lamp) + beam + f32(ambient * tint) for lamp, tint in channel_light]
    result = base * cv2.merge(gains)
    result = _glow(result, frame, sky, emission, glow_gain=1.2, emission_gain=0.9)
    result += merge3(fine_noise(rng, *frame.image.shape[:2]) * f32(2.0))
    return _to_uint8(result)


def _dusk(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """Warm, dim light under an orange-to-blue sky; lamps on."""
    base = frame.image.astype(f32)
    emission = _emission(frame)
    elevation = _elevation(frame)
    tint = tuple(float(v) for v in np.array([1.08, 0.86, 0.7]) * rng.uniform(0.45, 0.6))
    # a per-channel scalar (OpenCV's Scalar, a 4-tuple), which its stubs do not list
    result = _as_float32(cv2.multiply(base, (*tint, 0.0)))  # type: ignore[call-overload]
    top = np.array([50, 60, 110], f32)
    bottom = np.array([250, 150, 80], f32) * f32(rng.uniform(0.8, 1.0))
    middle = np.array([190, 110, 130], f32)
    e2 = elevation * 2.5
    upper = np.minimum(e2, 2)
    sky = np.where(e2 < 1, bottom * (1 - e2) + middle * e2, middle * (2 - upper) + top * (upper - 1))
    return _to_uint8(_glow(result, frame, sky, emission, glow_gain=1.2, emission_gain=0.55))


def _glow(
    result: Float32Array,
    frame: RenderedFrame,
    sky: Float32Array,
    emission: Float32Array,
    glow_gain: float,
    emission_gain: float,
) -> Float32Array:
    """The dark sky, emitters at least as bright as their emission, and a blurred glow around them."""
    height, width = frame.image.shape[:2]
    result = _replace_sky(result, frame, sky)
    result = np.maximum(result, emission * f32(emission_gain))
    small = cv2.resize(emission, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    glow = cv2.GaussianBlur(small, (0, 0), max(1.0, width / 256))
    result += cv2.resize(glow, (width, height), interpolation=cv2.INTER_LINEAR) * f32(glow_gain)
    return result


def _haze(frame: RenderedFrame, visibility_m: float) -> Float32Array:
    """(H, W) float32 haze opacity from depth (1 for the sky)."""
    alpha = (1.0 - np.exp(-3.0 * DEPTH_LUT / visibility_m)).astype(f32)
    alpha[SKY_DEPTH_CODE] = 1.0
    opacity: Float32Array = np.take(alpha, frame.depth_codes)
    return opacity


def _fog(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    visibility = float(rng.uniform(25.0, 90.0))
    grey = float(rng.uniform(180, 215))
    opacity = merge3(_haze(frame, visibility))
    result = frame.image.astype(f32)
    result += (np.array([grey * 0.98, grey, grey * 1.03], f32) - result) * opacity
    return _to_uint8(result)


def _rain(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """Dull colours, haze, a slight blur and streaks of falling drops."""
    image = frame.image
    height, width = image.shape[:2]
    result = image.astype(f32)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(f32)
    dim = f32(rng.uniform(0.6, 0.78))
    result = (result * f32(0.55) + merge3(grey) * f32(0.45)) * dim
    visibility = float(rng.uniform(120.0, 300.0))
    opacity = _haze(frame, visibility)
    result += (f32(rng.uniform(120, 160)) - result) * merge3(opacity)
    result = _as_float32(cv2.GaussianBlur(result, (3, 3), 0))
    streaks = np.zeros((height, width), f32)
    n = int(height * width / 900)
    angle = math.radians(float(rng.uniform(-20, 20)))
    length = rng.uniform(0.03, 0.08, n) * height
    start_x = rng.uniform(0, width, n)
    start_y = rng.uniform(-0.05 * height, height, n)
    ends = np.stack([start_x + math.sin(angle) * length, start_y + math.cos(angle) * length], 1)
    segments = np.stack([np.stack([start_x, start_y], 1), ends], 1)
    cv2.polylines(streaks, list(np.rint(segments * 16).astype(np.int32)), False, 1.0, 1, cv2.LINE_AA, 4)
    streaks = _as_float32(cv2.GaussianBlur(streaks, (0, 0), 0.7))
    result += merge3(streaks) * f32(rng.uniform(60, 110))
    return _to_uint8(result)


def _noise(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    sigma = f32(rng.uniform(8.0, 22.0))
    result = frame.image.astype(f32) + sensor_noise(rng, *frame.image.shape[:2]) * sigma
    return _to_uint8(result)


def _motion_blur(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """Often a zoom blur (forward motion), always a horizontal blur (shake, panning)."""
    image = frame.image
    height, width = image.shape[:2]
    out = image
    if rng.random() < 0.6:
        # zoom blur about the principal point: running average of scaled copies
        strength = float(rng.uniform(0.02, 0.05))
        cx, cy = frame.camera.cx, frame.camera.cy
        for i in range(1, 5):
            scale = 1.0 + strength * i / 4
            matrix = np.array([[scale, 0, (1 - scale) * cx], [0, scale, (1 - scale) * cy]], np.float32)
            warped = cv2.warpAffine(
                image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            out = _as_image(cv2.addWeighted(out, i / (i + 1), warped, 1.0 / (i + 1), 0.0))
    kernel = int(rng.integers(max(3, width // 90), max(5, width // 35)))
    return _as_image(cv2.blur(out, (kernel, 1), borderType=cv2.BORDER_REFLECT))


def _overexposed(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """A gain and offset that clip the highlights, and a bloom around what clipped."""
    image = frame.image
    height, width = image.shape[:2]
    gain = float(rng.uniform(1.8, 2.7))
    offset = float(rng.uniform(10, 40))
    out = cv2.convertScaleAbs(image, alpha=gain, beta=offset)
    small = cv2.resize(image, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    excess = small.astype(f32) * f32(gain) + f32(offset - 255.0)
    bloom = cv2.GaussianBlur(np.maximum(excess, 0), (0, 0), max(1.0, width / 600))
    bloom = cv2.resize(bloom, (width, height), interpolation=cv2.INTER_LINEAR)
    return _as_image(cv2.add(out, np.clip(bloom * f32(0.5), 0, 255).astype(np.uint8)))


def _underexposed(frame: RenderedFrame, rng: np.random.Generator) -> Image:
    """A low gain with a gamma curve, and the sensor noise that comes with it."""
    gain = float(rng.uniform(0.16, 0.35))
    gamma = float(rng.uniform(1.1, 1.4))
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma * gain).astype(f32)
    result = np.take(lut, frame.image) + sensor_noise(rng, *frame.image.shape[:2]) * f32(1.2)
    return _to_uint8(result)


_EFFECTS: dict[str, Callable[[RenderedFrame, np.random.Generator], Image]] = {
    "day": _day,
    "dusk": _dusk,
    "night": _night,
    "fog": _fog,
    "rain": _rain,
    "noise": _noise,
    "motion_blur": _motion_blur,
    "overexposed": _overexposed,
    "underexposed": _underexposed,
}
