"""Appearance of the agents (vehicles, pedestrians, riders): sizes in metres and colours.

Each look is drawn from the agent stream when the agent spawns and never changes, except a
pedestrian's ``standing`` flag, which is set right after the draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from seg_perception.synthetic.colours import (
    CAR_COLOURS,
    CLOTHES,
    HAIR,
    SKIN,
    Colour,
    jitter_colour,
    jitter_colour_with,
)
from seg_perception.synthetic.randomness import pick_weighted

_CAR_VARIANTS = ("sedan", "hatch", "suv", "van", "sedan", "hatch")
# Ranges of (length, width, height, belt line height, trunk length, hood length) per car variant.
_CAR_SIZE_RANGES = {
    "sedan": ((4.3, 4.9), (1.74, 1.86), (1.40, 1.50), (0.82, 0.92), (0.7, 1.0), (1.1, 1.35)),
    "hatch": ((3.7, 4.3), (1.68, 1.8), (1.45, 1.56), (0.85, 0.95), (0.12, 0.25), (0.9, 1.1)),
    "suv": ((4.4, 4.9), (1.84, 1.96), (1.65, 1.8), (0.98, 1.08), (0.12, 0.22), (1.0, 1.2)),
    "van": ((4.8, 5.4), (1.9, 2.0), (1.9, 2.15), (1.0, 1.1), (0.05, 0.12), (0.6, 0.8)),
}
_CARGO_COLOURS = [(230, 230, 228), (200, 200, 196), (150, 30, 30), (40, 70, 130), (210, 170, 40), (90, 110, 90)]
_BUS_COLOURS = [(235, 200, 40), (230, 230, 228), (190, 30, 35), (40, 80, 160), (60, 140, 80)]
_HELMET_COLOURS = [(30, 30, 30), (220, 220, 220), (180, 30, 30), (30, 60, 140)]


@dataclass(frozen=True)
class VehicleLook:
    length_m: float
    width_m: float
    height_m: float
    colour: Colour
    wheel_radius_m: float
    glass: Colour


@dataclass(frozen=True)
class CarLook(VehicleLook):
    variant: str  # sedan | hatch | suv | van
    belt_m: float  # height of the body's top (the window line)
    trunk_m: float  # length of the body behind the cabin
    hood_m: float  # length of the body in front of the cabin


@dataclass(frozen=True)
class TruckLook(VehicleLook):
    cab_height_m: float
    cargo: Colour  # colour of the cargo box


@dataclass(frozen=True)
class BusLook(VehicleLook):
    pass


@dataclass
class PersonLook:
    height_m: float
    skin: Colour
    hair: Colour
    top: Colour
    legs: Colour
    shoes: Colour
    coat: bool
    bag: bool
    bag_colour: Colour
    stride_phase0: float  # rad, the phase of the walk cycle at spawn
    length_m: float = 0.5  # footprint along the walking direction
    standing: bool = False


@dataclass(frozen=True)
class TwoWheelerLook:
    rider: PersonLook
    length_m: float
    frame: Colour
    helmet: Colour
    wears_helmet: bool


AgentLook: TypeAlias = CarLook | TruckLook | BusLook | PersonLook | TwoWheelerLook


def vehicle_look(rng: np.random.Generator, kind: str) -> CarLook | TruckLook | BusLook:
    """Size and colours of a ``kind`` (car | truck | bus) vehicle."""
    if kind == "car":
        variant = _CAR_VARIANTS[int(rng.integers(6))]
        uniforms = rng.random(6)
        length, width, height, belt, trunk, hood = (
            lo + (hi - lo) * v for (lo, hi), v in zip(_CAR_SIZE_RANGES[variant], uniforms)
        )
        return CarLook(
            length_m=float(length),
            width_m=float(width),
            height_m=float(height),
            belt_m=float(belt),
            trunk_m=float(trunk),
            hood_m=float(hood),
            variant=variant,
            colour=jitter_colour(rng, pick_weighted(rng, CAR_COLOURS), 0.05),
            wheel_radius_m=0.31 if variant != "suv" else 0.36,
            glass=jitter_colour(rng, (38, 46, 56), 0.15),
        )
    if kind == "truck":
        return TruckLook(
            length_m=float(rng.uniform(6.5, 9.5)),
            width_m=float(rng.uniform(2.3, 2.5)),
            height_m=float(rng.uniform(3.0, 3.7)),
            cab_height_m=float(rng.uniform(2.6, 3.0)),
            colour=jitter_colour(rng, pick_weighted(rng, CAR_COLOURS[:8]), 0.06),
            cargo=jitter_colour(rng, _CARGO_COLOURS[int(rng.integers(6))], 0.06),
            wheel_radius_m=0.5,
            glass=(40, 48, 58),
        )
    if kind == "bus":
        return BusLook(
            length_m=float(rng.uniform(10.5, 12.5)),
            width_m=2.55,
            height_m=float(rng.uniform(3.0, 3.3)),
            colour=jitter_colour(rng, _BUS_COLOURS[int(rng.integers(5))], 0.05),
            wheel_radius_m=0.5,
            glass=(34, 42, 52),
        )
    raise ValueError(kind)


def person_look(rng: np.random.Generator, child: bool = False) -> PersonLook:
    """A pedestrian (or a rider): height and clothes, all from one batch of 32 uniforms."""
    uniforms = rng.random(32).tolist()
    height = 1.05 + 0.35 * uniforms[0] if child else 1.56 + 0.36 * (uniforms[0] + uniforms[1]) / 2.0
    n_clothes = len(CLOTHES)
    return PersonLook(
        height_m=height,
        skin=jitter_colour_with(SKIN[int(uniforms[2] * len(SKIN))], 0.05, uniforms[8:12]),
        hair=jitter_colour_with(HAIR[int(uniforms[3] * len(HAIR))], 0.1, uniforms[12:16]),
        top=jitter_colour_with(CLOTHES[int(uniforms[4] * n_clothes)], 0.12, uniforms[16:20]),
        legs=jitter_colour_with(CLOTHES[int(uniforms[5] * 6)], 0.12, uniforms[20:24]),  # trousers: the darker six
        shoes=jitter_colour_with((35, 30, 30), 0.3, uniforms[24:28]),
        coat=uniforms[6] < 0.25,
        bag=uniforms[7] < 0.3,
        bag_colour=jitter_colour_with(CLOTHES[int(uniforms[28] * n_clothes)], 0.1, uniforms[28:32]),
        stride_phase0=2 * math.pi * uniforms[1],
    )


def two_wheeler_look(rng: np.random.Generator, kind: str) -> TwoWheelerLook:
    """A ``kind`` (bicycle | motorcycle) and its rider."""
    rider = person_look(rng)
    return TwoWheelerLook(
        rider=rider,
        length_m=1.75 if kind == "bicycle" else 2.1,
        frame=jitter_colour(rng, CLOTHES[int(rng.integers(len(CLOTHES)))], 0.1),
        helmet=jitter_colour(rng, _HELMET_COLOURS[int(rng.integers(4))], 0.1),
        wears_helmet=bool(kind == "motorcycle" or rng.random() < 0.5),
    )
