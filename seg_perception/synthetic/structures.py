"""Painters of what stands on the building line: buildings, walls, hedges and fences.

Each runs along the road from ``start_s`` to ``end_s``; its long faces are split into pieces
(:func:`~seg_perception.synthetic.items.split_by_distance`) so that they follow a curving
road. Faces are vertical quads at a road x; vertex orders are part of the rasterised result.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seg_perception.synthetic.colours import Colour, scale_colour
from seg_perception.synthetic.geometry import FloatArray, Polygon
from seg_perception.synthetic.items import LAYER_SCENE, Footprint, RenderItem, split_by_distance
from seg_perception.synthetic.label_ids import BUILDING, FENCE, VEGETATION, WALL
from seg_perception.synthetic.registry import TEXTURE_BUILDING, TEXTURE_FLAT, TEXTURE_METAL, TEXTURE_VEGETATION
from seg_perception.synthetic.world import AHEAD_M, Building, Fence, Hedge, Wall

if TYPE_CHECKING:
    from seg_perception.synthetic.builder import SceneBuilder

_LIT_WINDOW = (180, 160, 120)
_WINDOW_LIGHT = (225, 185, 125)  # emission of a lit window at night
_CULL_BEYOND_M = AHEAD_M + 20  # long structures starting farther away are not drawn
_FENCE_POST_SPACING_M = 2.5
_FENCE_BAR_SPACING_M = 0.16


def facade_quad(x: float, y0: float, y1: float, z0: float, z1: float) -> FloatArray:
    """Vertical quad at road x from height y0 to y1 and from z0 to z1 (along the road)."""
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], float)


def end_quad(x0: float, x1: float, height: float, z: float) -> FloatArray:
    """Vertical quad across the road at z, from road x0 to x1, from the ground up to ``height``."""
    return np.array([[x0, 0, z], [x1, 0, z], [x1, height, z], [x0, height, z]], float)


def _pairs(breaks: Sequence[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(breaks))


def paint_building(builder: SceneBuilder, building: Building) -> None:
    """A block with its façade towards the road: wall strips, cornice, plinth, a grid of windows
    (culled when behind, outside the view or smaller than 1.6 pixels) and shop fronts."""
    sign, look = building.side, building.look
    z0, z1 = building.start_s - builder.camera_s, building.end_s - builder.camera_s
    if z1 < 0.5 or z0 > _CULL_BEYOND_M:
        return
    x_facade = builder.scene.layout.side(sign).x(building.offset_m)
    height = look.height_m
    registry = builder.registry
    wall_group = registry.add(BUILDING, texture=TEXTURE_BUILDING)
    flat_group = registry.add(BUILDING, texture=TEXTURE_FLAT)
    x_back = x_facade + sign * look.depth_m
    footprint = Footprint(min(x_facade, x_back), max(x_facade, x_back), z0, z1)
    item = RenderItem(LAYER_SCENE, builder.distance(x_facade, max(z0, 0.0)), footprint)
    light = builder.light
    facade_shade = light.shade_normal((-sign, 0.0, 0.0))
    wall_colour = scale_colour(look.colour, facade_shade)
    breaks = np.array(split_by_distance(max(z0, 0.3), z1))
    polygons = item.polygons
    if z0 > 0.3:  # the near end face, when the building starts ahead
        end_colour = scale_colour(look.colour, light.shade_normal((0.0, 0, -1.0)))
        polygons.append(Polygon(end_quad(x_facade, x_back, height, z0), end_colour, wall_group, 0.0))

    _add_strips(polygons, breaks, x_facade, 0.0, height, wall_colour, wall_group)
    # details are layered a few cm in front of the façade, towards the road
    step_out = -sign * 0.03
    nearest = builder.distance(x_facade, max(z0, 0.5))
    if builder.pixels_per_metre(nearest) * 0.5 < 0.8:  # too far for any detail
        builder.items.append(item)
        return
    cornice = scale_colour(look.cornice, facade_shade)
    _add_strips(polygons, breaks, x_facade + step_out, height - 0.45, height, cornice, flat_group)
    plinth = scale_colour(look.colour, 0.7 * facade_shade)
    _add_strips(polygons, breaks, x_facade + step_out, 0.0, 0.5, plinth, flat_group)
    _paint_windows(builder, building, x_facade, z0, facade_shade, flat_group, breaks, polygons)
    builder.items.append(item)


def _paint_windows(
    builder: SceneBuilder,
    building: Building,
    x_facade: float,
    z0: float,
    facade_shade: float,
    flat_group: int,
    breaks: FloatArray,
    polygons: list[Polygon],
) -> None:
    """The window grid of a building (and its shop front), in front of the façade at ``x_facade``."""
    look, sign = building.look, building.side
    step_out = -sign * 0.03
    camera = builder.camera
    window_width, window_height = look.window_width_m, look.window_height_m
    floor_height, spacing = look.floor_height_m, look.window_spacing_m
    columns, floors = look.window_columns, look.floors
    # the columns are centred on the façade
    margin = (building.end_s - building.start_s - columns * spacing) / 2.0 + (spacing - window_width) / 2.0
    column_z = z0 + margin + np.arange(columns) * spacing
    column_mid = column_z + window_width / 2
    bent_x = x_facade + 0.5 * camera.curvature * column_mid * column_mid - camera.lateral_x
    width_px = window_width * camera.fy / np.maximum(np.hypot(bent_x, column_mid), 0.3)
    shown = (column_z > 1.0) & (column_z < AHEAD_M) & (width_px > 1.6)
    shown &= builder.in_view_array(np.full(columns, x_facade), column_mid, window_width)
    shown_columns = np.flatnonzero(shown)
    night = builder.night
    lit_group = builder.registry.add(BUILDING, emission=_WINDOW_LIGHT, texture=TEXTURE_FLAT) if night else flat_group
    glass = scale_colour(look.glass, facade_shade)
    frame = scale_colour(look.frame, facade_shade)
    first_floor = 1 if look.shop else 0
    floor_index = np.arange(first_floor, floors)
    sill = floor_index * floor_height + (floor_height - window_height) * 0.55
    fits = sill + window_height <= look.height_m - 0.5  # below the cornice
    floor_index, sill = floor_index[fits], sill[fits]
    if len(shown_columns) and len(floor_index):

        def grid(x: float, pad: float) -> FloatArray:
            """(floors, columns, 4, 3) window quads, grown by ``pad`` metres on every side."""
            quads = np.empty((len(floor_index), len(shown_columns), 4, 3))
            quads[..., 0] = x
            y0 = (sill - pad)[:, None]
            y1 = (sill + window_height + pad)[:, None]
            a0 = (column_z[shown_columns] - pad)[None, :]
            a1 = (column_z[shown_columns] + window_width + pad)[None, :]
            quads[:, :, 0, 1] = y0
            quads[:, :, 1, 1] = y0
            quads[:, :, 2, 1] = y1
            quads[:, :, 3, 1] = y1
            quads[:, :, 0, 2] = a0
            quads[:, :, 3, 2] = a0
            quads[:, :, 1, 2] = a1
            quads[:, :, 2, 2] = a1
            return quads

        panes = grid(x_facade + 2 * step_out, 0.0)
        frames = grid(x_facade + step_out, 0.08)
        framed = (width_px[shown_columns] > 5.0).tolist()  # frames only where they are 5+ pixels wide
        lit = look.lit[np.ix_(floor_index, shown_columns)].tolist()
        for row in range(len(floor_index)):
            for col in range(len(shown_columns)):
                if framed[col]:
                    polygons.append(Polygon(frames[row, col], frame, flat_group, 0.0))
                if lit[row][col]:
                    polygons.append(Polygon(panes[row, col], _LIT_WINDOW if night else glass, lit_group, 0.0))
                else:
                    polygons.append(Polygon(panes[row, col], glass, flat_group, 0.0))
    if look.shop:
        # ground-floor shop windows and an awning-coloured band above them
        y0, y1 = 0.55, min(floor_height - 0.5, 2.9)
        shop_glass = scale_colour(look.glass, facade_shade * 1.1)
        for col in shown_columns.tolist():
            a0, a1 = column_z[col] - 0.3, column_z[col] + window_width + 0.3
            group = lit_group if look.lit[0, col] else flat_group
            polygons.append(Polygon(facade_quad(x_facade + 2 * step_out, y0, y1, a0, a1), shop_glass, group, 0.0))
        awning = scale_colour(look.shop_colour, facade_shade)
        _add_strips(polygons, breaks, x_facade + 3 * step_out, y1 + 0.1, y1 + 0.6, awning, flat_group)


def _add_strips(
    polygons: list[Polygon], breaks: FloatArray, x: float, y0: float, y1: float, colour: Colour, group: int
) -> None:
    """A horizontal band of a façade at road x from height y0 to y1, one quad per piece between ``breaks``."""
    quads = np.empty((len(breaks) - 1, 4, 3))
    quads[:, :, 0] = x
    quads[:, 0, 1] = quads[:, 1, 1] = y0
    quads[:, 2, 1] = quads[:, 3, 1] = y1
    quads[:, 0, 2] = quads[:, 3, 2] = breaks[:-1]
    quads[:, 1, 2] = quads[:, 2, 2] = breaks[1:]
    for quad in quads:
        polygons.append(Polygon(quad, colour, group, 0.0))


def paint_wall(builder: SceneBuilder, wall: Wall) -> None:
    """A 25 cm thick wall with a darker coping along its top."""
    group = builder.registry.add(WALL, texture=TEXTURE_METAL)
    cap = scale_colour(wall.colour, 0.8)
    _paint_long_box(
        builder, wall.side, wall.start_s, wall.end_s, wall.offset_m, 0.25, wall.height_m, wall.colour, group, cap
    )


def paint_hedge(builder: SceneBuilder, hedge: Hedge) -> None:
    group = builder.registry.add(VEGETATION, texture=TEXTURE_VEGETATION)
    _paint_long_box(
        builder,
        hedge.side,
        hedge.start_s,
        hedge.end_s,
        hedge.offset_m,
        hedge.thickness_m,
        hedge.height_m,
        hedge.colour,
        group,
    )


def _paint_long_box(
    builder: SceneBuilder,
    sign: int,
    start_s: float,
    end_s: float,
    offset_m: float,
    thickness_m: float,
    height: float,
    colour: Colour,
    group: int,
    cap: Colour | None = None,
) -> None:
    """A box along the road: its face towards the road, its top when below the camera, its near
    end, and an optional ``cap`` band along the top of the face."""
    z0, z1 = max(start_s - builder.camera_s, 0.3), end_s - builder.camera_s
    if z1 < 0.5 or z0 > _CULL_BEYOND_M:
        return
    side = builder.scene.layout.side(sign)
    x_inner, x_outer = side.x(offset_m), side.x(offset_m + thickness_m)
    footprint = Footprint(min(x_inner, x_outer), max(x_inner, x_outer), z0, z1)
    item = RenderItem(LAYER_SCENE, builder.distance(x_inner, z0), footprint)
    light = builder.light
    face_colour = scale_colour(colour, light.shade_normal((-sign, 0.0, 0.0)))
    top_colour = scale_colour(colour, light.shade_normal((0.0, 1.0, 0.0)))
    top_visible = height < builder.camera.height_m
    for za, zb in _pairs(split_by_distance(z0, z1)):
        if top_visible:
            top = [[x_inner, height, za], [x_inner, height, zb], [x_outer, height, zb], [x_outer, height, za]]
            item.polygons.append(Polygon(np.array(top, float), top_colour, group, 0.0))
        item.polygons.append(Polygon(facade_quad(x_inner, 0, height, za, zb), face_colour, group, 0.0))
        if cap is not None:
            x_cap = x_inner + -sign * 0.02
            item.polygons.append(Polygon(facade_quad(x_cap, height - 0.12, height, za, zb), cap, group, 0.0))
    if start_s - builder.camera_s > 0.3:
        z = start_s - builder.camera_s
        end_colour = scale_colour(colour, light.shade_normal((0.0, 0, -1.0)))
        item.polygons.append(Polygon(end_quad(x_inner, x_outer, height, z), end_colour, group, 0.0))
    builder.items.append(item)


def paint_fence(builder: SceneBuilder, fence: Fence) -> None:
    """Boards with posts every 2.5 m, or a railing: two rails and vertical bars every 16 cm,
    merged into a panel from where the bars are closer than 3 pixels."""
    camera_s = builder.camera_s
    z0, z1 = max(fence.start_s - camera_s, 0.3), fence.end_s - camera_s
    if z1 < 0.5 or z0 > _CULL_BEYOND_M:
        return
    sign, height = fence.side, fence.height_m
    x = builder.scene.layout.side(sign).x(fence.offset_m)
    group = builder.registry.add(FENCE, texture=TEXTURE_METAL)
    item = RenderItem(LAYER_SCENE, builder.distance(x, z0), Footprint(x - 0.05, x + 0.05, z0, z1))
    polygons = item.polygons
    colour = scale_colour(fence.colour, builder.light.shade_normal((-sign, 0.0, 0.0)))
    pieces = _pairs(split_by_distance(z0, z1))
    if fence.style == "boards":
        for za, zb in pieces:
            polygons.append(Polygon(facade_quad(x, 0, height, za, zb), colour, group, 0.0))
        post_colour = scale_colour(colour, 0.75)
        x_post = x + -sign * 0.03
        z = math.ceil((fence.start_s) / _FENCE_POST_SPACING_M) * _FENCE_POST_SPACING_M - camera_s
        while z < z1:
            if z > 0.5:
                polygons.append(Polygon(facade_quad(x_post, 0, height, z - 0.05, z + 0.05), post_colour, group, 0.0))
            z += _FENCE_POST_SPACING_M
    else:
        for y0, y1 in ((height - 0.07, height), (0.12, 0.19)):  # top and bottom rails
            for za, zb in pieces:
                polygons.append(Polygon(facade_quad(x, y0, y1, za, zb), colour, group, 0.0))
        spacing = _FENCE_BAR_SPACING_M
        z = math.ceil(fence.start_s / spacing) * spacing - camera_s
        dense_from = None
        while z < z1:
            if z > 0.5:
                if builder.pixels_per_metre(builder.distance(x, z)) * spacing < 3.0:
                    dense_from = z
                    break
                # every 15th bar is a thicker post
                half_width = 0.03 if (round((z + camera_s) / spacing) % 15) else 0.06
                polygons.append(
                    Polygon(facade_quad(x, 0.12, height, z - half_width, z + half_width), colour, group, 0.0)
                )
            z += spacing
        if dense_from is not None:
            panel_colour = scale_colour(colour, 0.9)
            for za, zb in _pairs(split_by_distance(dense_from, z1)):
                polygons.append(Polygon(facade_quad(x, 0.12, height, za, zb), panel_colour, group, 0.0))
    builder.items.append(item)
