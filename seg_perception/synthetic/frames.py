"""Rendered frames with their Cityscapes ground truth: one independent frame, or a coherent drive.

Everything is deterministic: a frame depends on ``(seed, index, width, height, condition)``
only, through random streams seeded from those numbers (see
:mod:`seg_perception.synthetic.randomness`); the scene layout does not depend on the image size
or on the condition (only the level of detail of small objects follows the pixel size).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.conditions import apply_condition
from seg_perception.synthetic.label_ids import label_to_train_lut
from seg_perception.synthetic.params import CONDITION_PROBABILITIES, CONDITIONS, SceneParams, check_condition
from seg_perception.synthetic.randomness import (
    STREAM_AGENTS,
    STREAM_CONDITION,
    STREAM_DRIVE,
    STREAM_EFFECTS,
    STREAM_SCENE,
    STREAM_TEXTURE,
    choose,
    seeded_rng,
)
from seg_perception.synthetic.render import RenderedFrame, render
from seg_perception.synthetic.scene import Scene

_FRAME_AGENTS_AHEAD_M = 190.0  # an independent frame spawns agents on chunks starting this close
_DRIVE_STATIC_KEY = 1 << 40  # takes the place of the frame index in the static key of a drive
_DRIVE_SWAY_STREAM = 99


@dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """One rendered frame with its Cityscapes ground truth."""

    image: npt.NDArray[np.uint8]  # (H, W, 3) uint8 RGB
    label_ids: npt.NDArray[np.uint8]  # (H, W) uint8 Cityscapes label ids
    instance_ids: npt.NDArray[np.uint16]  # (H, W) uint16 Cityscapes instanceIds
    condition: str
    index: int
    params: SceneParams | None = None

    @property
    def train_ids(self) -> npt.NDArray[np.uint8]:
        """(H, W) uint8 train ids via the label set (255 = ignore)."""
        return label_to_train_lut()[self.label_ids]

    @property
    def instances(self) -> dict[int, int]:
        """Instance id -> visible pixel count, for thing instances only."""
        ids, counts = np.unique(self.instance_ids[self.instance_ids >= 1000], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


def _check_size(width: int, height: int) -> None:
    if int(width) < 16 or int(height) < 16:
        raise ValueError(f"image size must be at least 16x16, got {width}x{height}")


def _finish(
    rendered: RenderedFrame, condition: str, index: int, params: SceneParams, effects_rng: np.random.Generator
) -> SyntheticFrame:
    image = apply_condition(rendered, condition, effects_rng)
    return SyntheticFrame(
        image=image,
        label_ids=rendered.label_ids,
        instance_ids=rendered.instance_ids,
        condition=condition,
        index=int(index),
        params=params,
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
    check_condition(condition)
    seed, index = int(seed), int(index)
    if condition is None:
        condition = choose(seeded_rng(seed, index, STREAM_CONDITION), CONDITIONS, CONDITION_PROBABILITIES.tolist())
    scene_rng = seeded_rng(seed, index, STREAM_SCENE)
    params = SceneParams.sample(scene_rng, condition)
    scene = Scene(params, (seed, index), seeded_rng(seed, index, STREAM_AGENTS))
    scene.ensure_chunks(0.0, initial=True, agents_ahead=_FRAME_AGENTS_AHEAD_M)
    # pedestrians are caught at random phases of their stride
    for agent in scene.agents:
        if agent.kind == "person":
            agent.stride_phase = float(scene_rng.uniform(0, 2 * np.pi))
    rendered = render(
        scene,
        0.0,
        int(width),
        int(height),
        condition,
        seeded_rng(seed, index, STREAM_TEXTURE),
        scene.layout.ego_x,
        params.pitch_deg,
        params.yaw_deg,
    )
    return _finish(rendered, condition, index, params, seeded_rng(seed, index, STREAM_EFFECTS))


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
    check_condition(condition)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    seed = int(seed)
    if condition is None:
        condition = choose(
            seeded_rng(seed, STREAM_DRIVE, STREAM_CONDITION), CONDITIONS, CONDITION_PROBABILITIES.tolist()
        )
    params = SceneParams.sample(seeded_rng(seed, STREAM_DRIVE, STREAM_SCENE), condition)
    scene = Scene(params, (seed, _DRIVE_STATIC_KEY), seeded_rng(seed, STREAM_DRIVE, STREAM_AGENTS))
    scene.traffic.in_drive = True
    simulation_rng = seeded_rng(seed, STREAM_DRIVE, STREAM_AGENTS, 1)
    sway_phases = seeded_rng(seed, STREAM_DRIVE, _DRIVE_SWAY_STREAM).uniform(0, 2 * np.pi, 4)
    dt = 1.0 / float(fps)
    # texture noise is fixed for the drive (it belongs to the surfaces, not the frame)
    texture_seed = int(seeded_rng(seed, STREAM_DRIVE, STREAM_TEXTURE).integers(0, 2**62))
    drive_condition = condition

    def frames_of_drive() -> Iterator[SyntheticFrame]:
        camera_s = 0.0
        scene.ensure_chunks(camera_s, initial=True)
        for i in range(int(frames)):
            t = i * dt
            pitch = (
                params.pitch_deg + 0.25 * math.sin(2.1 * t + sway_phases[0]) + 0.1 * math.sin(7.3 * t + sway_phases[1])
            )
            yaw = params.yaw_deg * 0.5 + 0.4 * math.sin(0.5 * t + sway_phases[2])
            camera_x = scene.layout.ego_x + 0.2 * math.sin(0.3 * t + sway_phases[3])
            texture_rng = seeded_rng(texture_seed)
            rendered = render(
                scene, camera_s, int(width), int(height), drive_condition, texture_rng, camera_x, pitch, yaw
            )
            yield _finish(rendered, drive_condition, i, params, seeded_rng(seed, STREAM_DRIVE, STREAM_EFFECTS, i))
            camera_s += params.speed_mps * dt
            scene.step(dt, camera_s, params.speed_mps, simulation_rng)
            scene.ensure_chunks(camera_s, initial=False)

    return frames_of_drive()
