"""Screen-space noise: fixed base textures (cached per size), cropped at random offsets.

Cropping a cached field is much faster than drawing fresh noise per frame; the offsets come
from the frame's own random stream, so frames stay independent and reproducible.
"""

from __future__ import annotations

import functools
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
_BASE_NOISE_SEED = 20240601


@functools.lru_cache(maxsize=4)
def base_noise(height: int, width: int) -> tuple[Float32Array, Float32Array, Float32Array]:
    """Read-only (height, width) float32 noise textures: fine grain (unit Gaussian), blotchy
    mid/low frequency, and cloud scale. Called with twice the frame size, so crops fit."""
    rng = np.random.default_rng(_BASE_NOISE_SEED)
    fine = rng.standard_normal((height, width), dtype=np.float32)
    mid = cv2.resize(
        rng.standard_normal((height // 4 + 2, width // 4 + 2), dtype=np.float32),
        (width, height),
        interpolation=cv2.INTER_LINEAR,
    )
    low = cv2.resize(
        rng.standard_normal((height // 24 + 2, width // 24 + 2), dtype=np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    coarse = (0.55 * mid / mid.std() + 0.85 * low / low.std()).astype(np.float32)
    clouds = cv2.resize(
        rng.standard_normal((height // 48 + 3, width // 64 + 3), dtype=np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    clouds = (clouds / clouds.std() + 0.35 * low / low.std()).astype(np.float32)
    for field in (fine, coarse, clouds):
        field.setflags(write=False)
    return fine, coarse, clouds


def texture_fields(
    rng: np.random.Generator, height: int, width: int
) -> tuple[Float32Array, Float32Array, Float32Array]:
    """(fine, coarse, clouds) (height, width) float32 views of the base noise at offsets from ``rng``."""
    fine, coarse, clouds = base_noise(2 * height, 2 * width)
    oy, ox = (int(v) for v in rng.integers(0, [height, width]))
    oy2, ox2 = (oy * 7 + 3) % height, (ox * 3 + 5) % width
    return (
        fine[oy : oy + height, ox : ox + width],
        coarse[oy2 : oy2 + height, ox2 : ox2 + width],
        clouds[oy : oy + height, ox2 : ox2 + width],
    )


def fine_noise(rng: np.random.Generator, height: int, width: int) -> Float32Array:
    """(height, width) float32 unit Gaussian noise: a crop of the fine base field."""
    fine = base_noise(2 * height, 2 * width)[0]
    oy, ox = (int(v) for v in rng.integers(0, [height, width]))
    return fine[oy : oy + height, ox : ox + width]


def sensor_noise(rng: np.random.Generator, height: int, width: int, common: float = 0.5) -> Float32Array:
    """(height, width, 3) float32 unit Gaussian sensor noise per channel, plus ``common`` times a
    noise shared by the channels (luminance noise)."""
    fine = base_noise(2 * height, 2 * width)[0]
    oy, ox = rng.integers(0, [height, width], size=(4, 2)).T
    crops = [fine[oy[i] : oy[i] + height, ox[i] : ox[i] + width] for i in range(4)]
    common32 = np.float32(common)
    # OpenCV keeps the float32 dtype; its stubs only say "an array"
    return cast(
        Float32Array,
        cv2.merge([crops[0] + common32 * crops[3], crops[1] + common32 * crops[3], crops[2] + common32 * crops[3]]),
    )
