"""RGB colours: palettes of the scene content and the jitter that varies them.

Colours are ``(r, g, b)`` tuples of ints in 0..255; the jitter keeps the exact arithmetic of the
original generator (frames are reproducible bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Colour = tuple[int, int, int]
BLACK: Colour = (0, 0, 0)

CAR_COLOURS: list[tuple[Colour, float]] = [
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
BUILDING_COLOURS: list[Colour] = [
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
CLOTHES: list[Colour] = [
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
SKIN: list[Colour] = [(236, 198, 168), (210, 160, 122), (160, 110, 76), (100, 66, 46), (228, 184, 150)]
HAIR: list[Colour] = [(30, 22, 18), (60, 40, 25), (120, 90, 50), (190, 160, 110), (90, 90, 90)]


def scale_colour(colour: Sequence[int], factor: float) -> Colour:
    """Each channel times ``factor``, truncated, capped at 255 (shading, darker variants)."""
    return (min(255, int(colour[0] * factor)), min(255, int(colour[1] * factor)), min(255, int(colour[2] * factor)))


def jitter_colour(rng: np.random.Generator, colour: Sequence[int], amount: float = 0.08) -> Colour:
    """``colour`` with a random brightness (+-amount) and a smaller per-channel tint; four draws."""
    u0, u1, u2, u3 = rng.random(4).tolist()
    gain = 1.0 + amount * (2.0 * u3 - 1.0)
    tint = 2.0 * amount / 3.0
    base = gain - amount / 3.0
    r, g, b = colour[0] * (base + tint * u0), colour[1] * (base + tint * u1), colour[2] * (base + tint * u2)
    return (
        0 if r < 0 else 255 if r > 255 else int(r),
        0 if g < 0 else 255 if g > 255 else int(g),
        0 if b < 0 else 255 if b > 255 else int(b),
    )


def jitter_colour_with(colour: Sequence[int], amount: float, uniforms: Sequence[float]) -> Colour:
    """:func:`jitter_colour` from four pre-drawn uniforms (a look drawn in one batch)."""
    base = 1.0 + amount * (2.0 * uniforms[3] - 1.0) - amount / 3.0
    tint = 2.0 * amount / 3.0
    r, g, b = (max(0, min(255, int(colour[i] * (base + tint * uniforms[i])))) for i in range(3))
    return (r, g, b)
