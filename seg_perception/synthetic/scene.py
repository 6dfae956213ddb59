"""A scene: road layout, appearance, the static world (cached chunk by chunk) and its traffic."""

from __future__ import annotations

import math

import numpy as np

from seg_perception.synthetic.colours import Colour, jitter_colour
from seg_perception.synthetic.geometry import Light
from seg_perception.synthetic.layout import RoadLayout
from seg_perception.synthetic.params import SceneParams
from seg_perception.synthetic.randomness import STREAM_SCENE, seeded_rng
from seg_perception.synthetic.roadside import LampRow, generate_backdrop, generate_chunk
from seg_perception.synthetic.traffic import Agent, Traffic
from seg_perception.synthetic.world import AHEAD_M, BEHIND_M, CHUNK_M, StaticItem

_SIDEWALK_COLOURS = [(175, 172, 166), (160, 158, 155), (190, 182, 164), (168, 128, 114), (140, 142, 146)]
_TERRAIN_COLOURS = [(104, 138, 66), (120, 146, 72), (138, 140, 84), (90, 124, 58)]
_LAMP_COLOURS = [(70, 74, 78), (120, 124, 128), (40, 60, 50)]


def chunk_range(camera_s: float) -> range:
    """Numbers of the chunks that hold content around a camera at arc position ``camera_s``."""
    first = math.floor((camera_s - BEHIND_M) / CHUNK_M)
    last = math.floor((camera_s + AHEAD_M) / CHUNK_M)
    return range(first, last + 1)


class Scene:
    """Everything of one scene that outlives a frame.

    ``static_key`` seeds the static world (chunk streams); ``agent_rng`` spawns the agents. The
    appearance (colours of ground, sky, markings; the backdrop; street lamps) is drawn from the
    look seed of ``params``, in the order written here.
    """

    def __init__(self, params: SceneParams, static_key: tuple[int, ...], agent_rng: np.random.Generator) -> None:
        self.params = params
        look = seeded_rng(params.look_seed, STREAM_SCENE)
        self.layout = RoadLayout(params, look)
        self.static_key = static_key
        self.chunks: dict[int, list[StaticItem]] = {}
        self.traffic = Traffic(params, self.layout, agent_rng)
        self.light = Light(params)
        grey = float(look.uniform(72, 118))
        tint = look.uniform(-3, 3, 3)
        r, g, b = (int(v) for v in np.clip(grey + tint, 0, 255))
        self.asphalt: Colour = (r, g, b)
        self.sidewalk_colours = {
            sign: jitter_colour(look, _SIDEWALK_COLOURS[int(look.integers(len(_SIDEWALK_COLOURS)))], 0.06)
            for sign in (-1, 1)
        }
        self.kerb_colour = jitter_colour(look, (182, 180, 174), 0.05)
        self.terrain_colour = jitter_colour(look, _TERRAIN_COLOURS[int(look.integers(4))], 0.07)
        self.marking_white = jitter_colour(look, (225, 225, 220), 0.04)
        self.marking_yellow = jitter_colour(look, (226, 176, 40), 0.05)
        # sky colours at the horizon and at the top of the gradient
        if params.overcast:
            self.sky_horizon = jitter_colour(look, (208, 210, 214), 0.04)
            self.sky_zenith = jitter_colour(look, (150, 158, 170), 0.06)
        else:
            self.sky_horizon = jitter_colour(look, (200, 218, 238), 0.04)
            self.sky_zenith = jitter_colour(look, (62, 120, 196), 0.08)
        self.cloudiness = float(look.uniform(0.0, 1.0))
        urban_sides = sum(side.style == "urban" for side in (self.layout.left, self.layout.right))
        self.backdrop = generate_backdrop(look, urban_sides)
        spacing = {sign: float(look.uniform(22, 36)) for sign in (-1, 1)}
        phase = {sign: float(look.uniform(0, 36)) for sign in (-1, 1)}
        present = {
            sign: bool(look.random() < (0.85 if self.layout.side(sign).style != "green" else 0.45)) for sign in (-1, 1)
        }
        self.lamp_rows = {sign: LampRow(spacing[sign], phase[sign], present[sign]) for sign in (-1, 1)}
        self.lamp_colour = jitter_colour(look, _LAMP_COLOURS[int(look.integers(3))], 0.05)

    @property
    def agents(self) -> list[Agent]:
        return self.traffic.agents

    def chunk(self, number: int) -> list[StaticItem]:
        """The static items of chunk ``number`` (generated on first use)."""
        if number not in self.chunks:
            self.chunks[number] = generate_chunk(number, self.static_key, self.layout, self.lamp_rows)
        return self.chunks[number]

    def ensure_chunks(self, camera_s: float, initial: bool, agents_ahead: float = AHEAD_M) -> None:
        """Generate the chunks around ``camera_s``, spawn the agents of those that start less than
        ``agents_ahead`` metres ahead, and forget chunks left well behind."""
        chunks = chunk_range(camera_s)
        for number in chunks:
            statics = self.chunk(number)
            if number * CHUNK_M < camera_s + agents_ahead:
                self.traffic.spawn_chunk(number, camera_s, statics, initial)
        for number in [n for n in self.chunks if n < chunks.start - 1]:
            del self.chunks[number]

    def step(self, dt: float, camera_s: float, ego_speed: float, rng: np.random.Generator) -> None:
        """Advance the traffic by ``dt`` seconds; see :meth:`Traffic.step`."""
        self.traffic.step(dt, camera_s, ego_speed, rng)
