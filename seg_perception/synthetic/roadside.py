"""Generation of the static world: one chunk of road at a time, and the far backdrop.

A chunk depends only on the scene's static key and its number (its own random stream), so the
world is the same whichever frame asks for it first. Every draw below happens in a fixed order;
reordering them would change every generated scene.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from seg_perception.synthetic.colours import BUILDING_COLOURS, CLOTHES, jitter_colour, scale_colour
from seg_perception.synthetic.layout import RoadLayout, RoadSide
from seg_perception.synthetic.randomness import STREAM_STATIC, choose, seeded_rng
from seg_perception.synthetic.world import (
    CHUNK_M,
    BackdropItem,
    Building,
    BuildingLook,
    Crosswalk,
    CrownBlob,
    Fence,
    Hedge,
    SignLook,
    SkylineBlock,
    StaticItem,
    StreetLamp,
    TrafficLight,
    TrafficLightLook,
    TrafficSign,
    Tree,
    Treeline,
    TreeLook,
    Wall,
)

# What stands on the building line, with probabilities, per roadside style.
_BUILDING_LINE_KINDS = {
    "urban": (["building", "gap", "wall", "fence", "hedge"], [0.78, 0.08, 0.06, 0.04, 0.04]),
    "suburban": (["building", "gap", "wall", "fence", "hedge", "trees"], [0.4, 0.1, 0.1, 0.14, 0.14, 0.12]),
    "green": (["building", "gap", "fence", "hedge", "trees"], [0.1, 0.15, 0.15, 0.2, 0.4]),
}
_WALL_COLOURS = [(170, 168, 160), (150, 90, 70), (200, 196, 186), (120, 120, 118)]
_FENCE_COLOURS = [(60, 64, 68), (120, 100, 70), (150, 150, 150), (40, 70, 50)]
_SIGN_KINDS = ("round_red", "round_blue", "triangle", "rect_blue", "stop", "diamond", "rect_white")


class LampRow(NamedTuple):
    """Street lamps of one side: every ``spacing_m`` metres from ``phase_m``, if ``present``."""

    spacing_m: float
    phase_m: float
    present: bool


def generate_chunk(
    chunk: int, static_key: tuple[int, ...], layout: RoadLayout, lamp_rows: dict[int, LampRow]
) -> list[StaticItem]:
    """The static items of road from ``chunk * CHUNK_M`` to ``(chunk + 1) * CHUNK_M`` metres."""
    rng = seeded_rng(*static_key, STREAM_STATIC, chunk + (1 << 20))
    start_s, end_s = chunk * CHUNK_M, (chunk + 1) * CHUNK_M
    out: list[StaticItem] = []
    crosswalk = None
    if rng.random() < 0.3:
        crosswalk = Crosswalk(float(rng.uniform(start_s + 8, end_s - 12)), float(rng.uniform(3.0, 4.5)))
        out.append(crosswalk)
    for sign in (-1, 1):
        side = layout.side(sign)
        _generate_building_line(rng, side, start_s, end_s, out)
        lamps = lamp_rows[sign]
        if lamps.present:  # at a regular spacing along the road
            n = math.ceil((start_s - lamps.phase_m) / lamps.spacing_m)
            while lamps.phase_m + n * lamps.spacing_m < end_s:
                s = lamps.phase_m + n * lamps.spacing_m
                out.append(StreetLamp(sign, s, side.lamp_offset_m, float(rng.uniform(7.0, 9.0))))
                n += 1
        if side.tree_offset_m is not None and (side.style != "urban" or rng.random() < 0.6):
            s = start_s + float(rng.uniform(0, 8))
            spacing = float(rng.uniform(7, 14))
            while s < end_s:
                if crosswalk is None or abs(s - crosswalk.start_s) > 5:  # keep the crossing clear
                    offset = side.tree_offset_m + float(rng.uniform(-0.2, 0.2))
                    out.append(Tree(sign, s, offset, _tree_look(rng)))
                s += spacing * float(rng.uniform(0.8, 1.25))
        for _ in range(int(rng.poisson(0.9 if sign > 0 else 0.5))):
            s = float(rng.uniform(start_s, end_s))
            offset = side.lamp_offset_m + float(rng.uniform(-0.15, 0.3))
            out.append(TrafficSign(sign, s, offset, _sign_look(rng, sign)))
        if crosswalk is not None:
            # before the crossing on the right, after it (seen from the oncoming lanes) on the left
            s = crosswalk.start_s - 1.0 if sign > 0 else crosswalk.start_s + crosswalk.length_m + 1.0
            out.append(TrafficLight(sign, s, side.lamp_offset_m, _traffic_light_look(rng, sign)))
    return out


def _generate_building_line(
    rng: np.random.Generator, side: RoadSide, start_s: float, end_s: float, out: list[StaticItem]
) -> None:
    style = side.style
    kinds, probabilities = _BUILDING_LINE_KINDS[style]
    s = start_s
    while s < end_s:
        kind = choose(rng, kinds, probabilities)
        length = float(rng.uniform(9, 32)) if kind == "building" else float(rng.uniform(6, 24))
        end = min(s + length, end_s)
        offset = side.building_line_m + (float(rng.uniform(0, 1.2)) if style == "urban" else float(rng.uniform(0, 3)))
        along = (side.sign, s, end)  # every kind's side, start and end along the road
        # Values are drawn in the order of each record's fields: the stream must not change.
        if kind == "building":
            out.append(Building(*along, offset, _building_look(rng, style, end - s)))
        elif kind == "wall":
            wall_offset = offset - float(rng.uniform(0, 0.5))
            height = float(rng.uniform(1.0, 2.6))
            out.append(Wall(*along, wall_offset, height, jitter_colour(rng, _WALL_COLOURS[int(rng.integers(4))], 0.08)))
        elif kind == "fence":
            height = float(rng.uniform(1.0, 1.9))
            colour = jitter_colour(rng, _FENCE_COLOURS[int(rng.integers(4))], 0.1)
            out.append(Fence(*along, min(offset, side.width_m + 0.2), height, colour, choose(rng, ("bars", "boards"))))
        elif kind == "hedge":
            height, thickness = float(rng.uniform(0.9, 1.9)), float(rng.uniform(0.7, 1.3))
            colour = jitter_colour(rng, (58, 92, 40), 0.12)
            out.append(Hedge(*along, min(offset, side.width_m + 0.3), height, thickness, colour))
        elif kind == "trees":
            _add_tree_row(rng, side.sign, s, end, offset, (0, 6), (3, 8), out)
        # "gap": nothing on the building line; the ground and backdrop show through
        if kind != "building" and kind != "trees" and rng.random() < 0.5:
            # buildings or trees set back further behind low structures
            if rng.random() < 0.5:
                setback = offset + float(rng.uniform(5, 15))
                out.append(Building(side.sign, s, end, setback, _building_look(rng, style, end - s)))
            else:
                _add_tree_row(rng, side.sign, s, end, offset, (2, 8), (3, 7), out)
        s = end


def _add_tree_row(
    rng: np.random.Generator,
    sign: int,
    start_s: float,
    end_s: float,
    offset: float,
    depth_range: tuple[float, float],
    step_range: tuple[float, float],
    out: list[StaticItem],
) -> None:
    """Trees scattered from ``start_s`` to ``end_s``, ``depth_range`` metres behind ``offset``."""
    s = start_s + float(rng.uniform(1, 4))
    while s < end_s:
        out.append(Tree(sign, s, offset + float(rng.uniform(*depth_range)), _tree_look(rng)))
        s += float(rng.uniform(*step_range))


def _tree_look(rng: np.random.Generator) -> TreeLook:
    uniforms = rng.random(8)
    radius = 1.3 + 1.9 * uniforms[1]
    n_blobs = 6 + int(uniforms[3] * 5)
    green = np.array([40 + 45 * uniforms[4], 78 + 47 * uniforms[5], 22 + 28 * uniforms[6]])
    blob_u = rng.random((n_blobs, 4))  # per blob: lateral offset, height, radius, shade
    offset_y = (blob_u[:, 1] * 1.45 - 0.7) * radius
    order = np.argsort(offset_y, kind="stable")  # lower blobs first, upper ones painted over them
    # higher blobs catch more light
    shade = 0.72 + 0.45 * (offset_y / radius + 0.7) / 1.45 + (blob_u[:, 3] * 0.16 - 0.08)
    colours = np.minimum(green[None, :] * shade[:, None], 255.0).astype(int)
    blobs = []
    for i in order:
        r, g, b = colours[i].tolist()
        blobs.append(
            CrownBlob(
                (blob_u[i, 0] * 1.5 - 0.75) * radius, offset_y[i], (0.42 + 0.28 * blob_u[i, 2]) * radius, (r, g, b)
            )
        )
    return TreeLook(
        conifer=bool(uniforms[0] < 0.15),
        crown_radius_m=radius,
        crown_base_m=1.8 + 1.4 * uniforms[2],
        blobs=blobs,
        trunk_width_m=0.22 + 0.18 * uniforms[7],
        trunk_colour=jitter_colour(rng, (86, 66, 48), 0.15),
        green=(int(green[0]), int(green[1]), int(green[2])),
    )


def _sign_look(rng: np.random.Generator, sign: int) -> SignLook:
    return SignLook(
        kind=choose(rng, _SIGN_KINDS),
        height_m=float(rng.uniform(2.0, 2.8)),
        size_m=float(rng.uniform(0.55, 0.85)),
        back=sign < 0,
        extra_plate=bool(rng.random() < 0.25),
    )


def _traffic_light_look(rng: np.random.Generator, sign: int) -> TrafficLightLook:
    return TrafficLightLook(
        overhead=bool(sign > 0 and rng.random() < 0.45),
        state=int(rng.integers(3)),
        height_m=float(rng.uniform(3.2, 4.0)),
        back=sign < 0,
    )


def _building_look(rng: np.random.Generator, style: str, length: float) -> BuildingLook:
    floor_height = float(rng.uniform(3.0, 3.6))
    floors = int(rng.integers(2, 9)) if style == "urban" else int(rng.integers(1, 4))
    height = floors * floor_height + float(rng.uniform(0.6, 2.0))
    glass_front = rng.random() < 0.15 and floors > 3  # an office block of glass bands
    base = (150, 170, 185) if glass_front else BUILDING_COLOURS[int(rng.integers(len(BUILDING_COLOURS)))]
    colour = jitter_colour(rng, base, 0.07)
    window_width = float(rng.uniform(1.0, 1.6))
    if not glass_front:
        spacing = float(rng.uniform(max(window_width + 0.6, 2.0), 3.6))
        window_height = float(rng.uniform(1.2, 1.8))
    else:
        spacing = window_width + 0.25
        window_height = floor_height - 0.7
    columns = max(1, int((length - 1.0) / spacing))
    lit = rng.random((floors, columns)) < float(rng.uniform(0.08, 0.35))
    return BuildingLook(
        height_m=height,
        floor_height_m=floor_height,
        floors=floors,
        colour=colour,
        depth_m=float(rng.uniform(8, 20)),
        window_width_m=window_width,
        window_height_m=window_height,
        window_spacing_m=spacing,
        window_columns=columns,
        lit=lit,
        glass=jitter_colour(rng, (48, 62, 78) if not glass_front else (70, 96, 120), 0.15),
        frame=scale_colour(colour, 0.8),
        cornice=scale_colour(colour, float(rng.uniform(0.6, 0.85))),
        shop=bool(rng.random() < 0.5 and style == "urban"),
        shop_colour=jitter_colour(rng, CLOTHES[int(rng.integers(len(CLOTHES)))], 0.1),
    )


def generate_backdrop(rng: np.random.Generator, urban_sides: int) -> list[BackdropItem]:
    """Skyline blocks and tree lines 400-700 m ahead, camera-relative; more buildings the more
    sides of the road are urban (0, 1 or 2)."""
    items: list[BackdropItem] = []
    p_building = (0.15, 0.45, 0.7)[urban_sides]
    for distance in (420.0, 620.0):
        x = -distance * 2.0
        while x < distance * 2.0:
            width = float(rng.uniform(15, 70))
            draw = rng.random()
            if draw < p_building:
                jittered = distance + float(rng.uniform(-40, 40))
                height = float(rng.uniform(10, 55 if distance < 500 else 80))
                items.append(SkylineBlock(jittered, x, x + width, height, jitter_colour(rng, (150, 155, 165), 0.12)))
            elif draw < p_building + 0.45:
                tops = rng.uniform(8, 22, max(3, int(width / 6)))
                jittered = distance + float(rng.uniform(-40, 40))
                items.append(Treeline(jittered, x, x + width, tops, jitter_colour(rng, (64, 88, 58), 0.15)))
            x += width * float(rng.uniform(0.7, 1.05))
    return items
