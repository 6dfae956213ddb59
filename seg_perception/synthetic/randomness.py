"""Seeded random streams and the few draws built on them.

Every random stream of the generator is ``seeded_rng(seed, index, TAG, ...)``: a frame depends
on its numbers only, never on what was rendered before it. The tags keep the streams of one
frame apart (changing one would change every frame ever generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

STREAM_SCENE = 1  # scene parameters; with a look seed: the scene's appearance
STREAM_CONDITION = 2  # the drawn imaging condition
STREAM_EFFECTS = 3  # the condition's own randomness (noise, streaks, gains)
STREAM_TEXTURE = 4  # texture noise offsets and the white balance
STREAM_STATIC = 5  # static world, per chunk
STREAM_DRIVE = 6  # every stream of a drive (instead of a frame index)
STREAM_AGENTS = 7  # traffic and pedestrians


def seeded_rng(*ints: int) -> np.random.Generator:
    """A generator seeded from integers (each taken modulo 2**63, so negatives are valid)."""
    return np.random.default_rng([int(i) % (1 << 63) for i in ints])


def choose(rng: np.random.Generator, options: Sequence[T], weights: Sequence[float] | None = None) -> T:
    """One of ``options`` (optionally weighted) from a single uniform draw (rng.choice is slow)."""
    if weights is None:
        return options[int(rng.random() * len(options))]
    draw = rng.random() * sum(weights)
    cumulative = 0.0
    for option, weight in zip(options, weights):
        cumulative += weight
        if draw < cumulative:
            return option
    return options[-1]


def pick_weighted(rng: np.random.Generator, weighted: Sequence[tuple[T, float]]) -> T:
    """One option of ``[(option, weight), ...]``; see :func:`choose`."""
    return choose(rng, [option for option, _ in weighted], [weight for _, weight in weighted])
