"""Painters of what stands at one point beside the road: trees, street lamps, traffic signs and
traffic lights. Flat parts (tree crowns, sign plates) are 2-D shapes in a vertical plane."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from seg_perception.synthetic.colours import Colour, scale_colour
from seg_perception.synthetic.geometry import (
    FloatArray,
    Polygon,
    add_flat_shapes,
    add_solid,
    box_quads,
    ellipse,
    in_vertical_plane,
    rotated_polygon,
)
from seg_perception.synthetic.items import LAYER_SCENE, Footprint, LampPool, RenderItem
from seg_perception.synthetic.label_ids import POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION
from seg_perception.synthetic.registry import TEXTURE_FLAT, TEXTURE_METAL, TEXTURE_VEGETATION
from seg_perception.synthetic.world import AHEAD_M, StreetLamp, TrafficLight, TrafficSign, Tree

if TYPE_CHECKING:
    from seg_perception.synthetic.builder import SceneBuilder
    from seg_perception.synthetic.camera import Camera

# Conifer crown: tiers of (half width, bottom, top) in crown radii (heights scaled by 0.8).
_CONIFER_TIERS = ((1.2, 0.0, 1.3), (0.95, 0.9, 2.1), (0.7, 1.7, 2.9), (0.4, 2.5, 3.5))
_LAMP_ARM_M = 1.8
_LAMP_LIGHT = (255, 214, 160)  # emission of a lamp head at night
_RED, _WHITE, _BLUE, _BLACK = (196, 28, 32), (238, 238, 232), (30, 70, 170), (25, 25, 25)
_AMBER_SIGN = (235, 190, 30)
_SIGN_BACK = (150, 152, 156)
_SIGN_POLE = (130, 134, 138)
_TRAFFIC_LIGHT_POLE = (90, 94, 98)
_TRAFFIC_LIGHT_HOUSING = (34, 36, 34)
_SIGNAL_COLOURS = [(255, 40, 30), (255, 190, 20), (40, 255, 120)]  # red, amber, green, top to bottom

Shapes = list[tuple[FloatArray, Colour]]


def _facing_axis(camera: Camera, x: float, z: float) -> tuple[float, float]:
    """Unit (x, z) vector perpendicular to the viewing direction: billboards face the camera."""
    dx, dz = x + camera.bend(z) - camera.lateral_x, max(z, 0.5)
    norm = math.hypot(dx, dz)
    return (dz / norm, -dx / norm)


def _add_pole(
    builder: SceneBuilder,
    out: list[Polygon],
    x: float,
    z: float,
    height: float,
    width: float,
    colour: Colour,
    group: int,
) -> None:
    """A square pole ``width`` metres thick from the ground up to ``height`` (no caps)."""
    bottom, top = box_quads(x - width / 2, x + width / 2, 0.0, height, z - width / 2, z + width / 2)
    add_solid(
        bottom, top, builder.camera.position, builder.light, [None, None, colour, colour, colour, colour], group, out
    )


def paint_tree(builder: SceneBuilder, tree: Tree) -> None:
    """A trunk and a crown facing the camera: tiers of triangles (conifer) or leaf blobs, the
    blobs as 12-gons near and 7-gons far; plus a shadow on the ground."""
    look = tree.look
    placed = builder.place(tree, -3.0, look.crown_radius_m * 1.6 + 0.5)
    if placed is None:
        return
    x, z, distance = placed
    radius = look.crown_radius_m
    item = RenderItem(LAYER_SCENE, distance, Footprint(x - 0.8 * radius, x + 0.8 * radius, z - 0.2, z + 0.2))
    axis = _facing_axis(builder.camera, x, z)
    group = builder.registry.add(VEGETATION, texture=TEXTURE_VEGETATION)
    base = look.crown_base_m
    trunk_w = look.trunk_width_m
    trunk = [[-trunk_w / 2, 0], [trunk_w / 2, 0], [trunk_w * 0.35, base + radius], [-trunk_w * 0.35, base + radius]]
    shapes: Shapes = [(np.array(trunk), look.trunk_colour)]
    sides = 12 if builder.pixels_per_metre(distance) * radius > 12 else 7
    if look.conifer:
        for i, (half_width, bottom, top) in enumerate(_CONIFER_TIERS):
            tier = [
                [-half_width * radius, base + bottom * radius * 0.8],
                [half_width * radius, base + bottom * radius * 0.8],
                [0, base + top * radius * 0.8],
            ]
            shapes.append((np.array(tier), scale_colour(look.green, 0.75 + 0.12 * i)))
    else:
        centre_y = base + radius
        for blob in look.blobs:
            outline = ellipse(sides, blob.offset_u, centre_y + blob.offset_y, blob.radius_m, blob.radius_m * 0.92)
            shapes.append((outline, blob.colour))
    add_flat_shapes(item.polygons, (x, 0.0, z), axis, shapes, group)
    builder.shadows.append(
        np.array(
            [
                [x - radius * 0.8, 0, z - radius * 0.6],
                [x + radius * 0.8, 0, z - radius * 0.6],
                [x + radius * 0.8, 0, z + radius * 0.6],
                [x - radius * 0.8, 0, z + radius * 0.6],
            ]
        )
    )
    builder.items.append(item)


def paint_street_lamp(builder: SceneBuilder, lamp: StreetLamp) -> None:
    """A pole with an arm over the road and a lamp head whose underside glows at night; its
    light pool on the ground is recorded even when the lamp itself is out of view."""
    sign, height = lamp.side, lamp.height_m
    z = lamp.s - builder.camera_s
    if z < -2 or z > AHEAD_M:
        return
    x = builder.scene.layout.side(sign).x(lamp.offset_m)
    builder.lamp_pools.append(LampPool(x - sign * _LAMP_ARM_M, z, 0.7 * height))
    if not builder.in_view(x, z, 2.5):
        return
    item = RenderItem(LAYER_SCENE, builder.distance(x, z), Footprint(x - 0.1, x + 0.1, z - 0.1, z + 0.1))
    registry, camera, light = builder.registry, builder.camera, builder.light
    group = registry.add(POLE, texture=TEXTURE_METAL)
    colour = builder.scene.lamp_colour
    polygons = item.polygons
    _add_pole(builder, polygons, x, z, height, 0.16, colour, group)
    x_end = x - sign * _LAMP_ARM_M
    # the arm: a thin box rising slightly towards the road
    bottom = [
        [x, height - 0.1, z - 0.05],
        [x_end, height + 0.25, z - 0.05],
        [x_end, height + 0.25, z + 0.05],
        [x, height - 0.1, z + 0.05],
    ]
    top = [
        [x, height - 0.02, z - 0.05],
        [x_end, height + 0.33, z - 0.05],
        [x_end, height + 0.33, z + 0.05],
        [x, height - 0.02, z + 0.05],
    ]
    add_solid(bottom, top, camera.position, light, colour, group, polygons)
    glow_group = registry.add(POLE, emission=_LAMP_LIGHT, texture=TEXTURE_FLAT) if builder.night else group
    bottom, top = box_quads(x_end - 0.35, x_end + 0.35, height + 0.1, height + 0.3, z - 0.17, z + 0.17)
    head_colours: list[Colour | None] = [(230, 228, 210), scale_colour(colour, 1.1), colour, colour, colour, colour]
    add_solid(bottom, top, camera.position, light, head_colours, group, polygons)
    if builder.night and height + 0.1 > camera.height_m:  # the glowing underside, seen from below
        y = height + 0.09
        underside = [
            [x_end - 0.3, y, z - 0.14],
            [x_end + 0.3, y, z - 0.14],
            [x_end + 0.3, y, z + 0.14],
            [x_end - 0.3, y, z + 0.14],
        ]
        polygons.append(Polygon(np.array(underside), (250, 240, 215), glow_group, 0.0))
    builder.items.append(item)


def paint_traffic_sign(builder: SceneBuilder, sign_item: TrafficSign) -> None:
    """A sign plate on a pole (and an optional extra plate above it), facing the traffic; the
    signs of the oncoming lanes show their grey back."""
    placed = builder.place(sign_item, 0.5, 1.0)
    if placed is None:
        return
    x, z, distance = placed
    look = sign_item.look
    item = RenderItem(LAYER_SCENE, distance, Footprint(x - 0.4, x + 0.4, z - 0.07, z + 0.07))
    pole_group = builder.registry.add(POLE, texture=TEXTURE_METAL)
    sign_group = builder.registry.add(TRAFFIC_SIGN, texture=TEXTURE_FLAT)
    bottom, r = look.height_m, look.size_m / 2
    top = bottom + r * 2 + (r * 1.6 if look.extra_plate else 0)
    _add_pole(builder, item.polygons, x, z, top - 0.05, 0.07, _SIGN_POLE, pole_group)
    axis = (1.0, 0.0)  # plates face along the road
    centre_y = bottom + r
    kind = look.kind
    if look.back:
        if kind.startswith("round"):
            back = ellipse(16, 0, centre_y, r, r)
        elif kind == "triangle":
            back = np.array([[-r * 1.1, centre_y + r * 0.6], [r * 1.1, centre_y + r * 0.6], [0, centre_y - r * 1.1]])
        else:
            back = np.array([[-r, centre_y - r], [r, centre_y - r], [r, centre_y + r], [-r, centre_y + r]])
        item.polygons.append(Polygon(in_vertical_plane((x, 0, z + 0.06), axis, back), _SIGN_BACK, sign_group, 0.0))
    else:
        shapes = _SIGN_FACES[kind](r, centre_y)
        if look.extra_plate:
            shapes += _extra_plate(r, bottom + 2 * r + r * 0.8)
        add_flat_shapes(item.polygons, (x, 0.0, z - 0.06), axis, shapes, sign_group)
    builder.items.append(item)


def _rect(u0: float, u1: float, v0: float, v1: float) -> FloatArray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], float)


def _round_red_face(r: float, cy: float) -> Shapes:  # a prohibition sign
    return [
        (ellipse(18, 0, cy, r, r), _RED),
        (ellipse(18, 0, cy, r * 0.75, r * 0.75), _WHITE),
        (_rect(-r * 0.35, r * 0.35, cy - r * 0.25, cy + r * 0.3), _BLACK),
    ]


def _round_blue_face(r: float, cy: float) -> Shapes:  # a mandatory direction: an arrow up
    arrow = [
        [-r * 0.12, cy - r * 0.6],
        [r * 0.12, cy - r * 0.6],
        [r * 0.12, cy + 0.2 * r],
        [r * 0.4, cy + 0.2 * r],
        [0, cy + 0.65 * r],
        [-r * 0.4, cy + 0.2 * r],
        [-r * 0.12, cy + 0.2 * r],
    ]
    return [(ellipse(18, 0, cy, r, r), _BLUE), (np.array(arrow, float), _WHITE)]


def _triangle_face(r: float, cy: float) -> Shapes:  # a warning sign
    outer = [[-r * 1.15, cy - r * 0.7], [r * 1.15, cy - r * 0.7], [0, cy + r * 1.1]]
    inner = [[-r * 0.8, cy - r * 0.52], [r * 0.8, cy - r * 0.52], [0, cy + r * 0.72]]
    return [(np.array(outer, float), _RED), (np.array(inner, float), _WHITE)]


def _stop_face(r: float, cy: float) -> Shapes:
    return [
        (rotated_polygon(8, 0, cy, r * 1.08), _RED),
        (_rect(-r * 0.6, r * 0.6, cy - r * 0.15, cy + r * 0.15), _WHITE),
    ]


def _diamond_face(r: float, cy: float) -> Shapes:  # priority road
    outer = [[0, cy - r * 1.1], [r * 1.1, cy], [0, cy + r * 1.1], [-r * 1.1, cy]]
    inner = [[0, cy - r * 0.75], [r * 0.75, cy], [0, cy + r * 0.75], [-r * 0.75, cy]]
    return [(np.array(outer, float), _WHITE), (np.array(inner, float), _AMBER_SIGN)]


def _rect_face(background: Colour, symbol: Colour) -> Callable[[float, float], Shapes]:
    def face(r: float, cy: float) -> Shapes:
        return [
            (_rect(-r * 0.9, r * 0.9, cy - r, cy + r), background),
            (_rect(-r * 0.5, r * 0.5, cy - r * 0.5, cy + r * 0.55), symbol),
        ]

    return face


def _extra_plate(r: float, cy: float) -> Shapes:
    """An additional white plate with a black bar, above the sign."""
    return [
        (_rect(-r, r, cy - r * 0.6, cy + r * 0.6), _WHITE),
        (_rect(-r * 0.8, r * 0.8, cy - r * 0.1, cy + r * 0.1), _BLACK),
    ]


# Sign face shapes per kind, from the plate's half size r and centre height cy (m).
_SIGN_FACES: dict[str, Callable[[float, float], Shapes]] = {
    "round_red": _round_red_face,
    "round_blue": _round_blue_face,
    "triangle": _triangle_face,
    "stop": _stop_face,
    "diamond": _diamond_face,
    "rect_blue": _rect_face(_BLUE, _WHITE),
    "rect_white": _rect_face(_WHITE, _BLACK),
}


def paint_traffic_light(builder: SceneBuilder, light_item: TrafficLight) -> None:
    """A signal head on a pole, or on a mast arm over the road; the lit lamp is an emitter."""
    placed = builder.place(light_item, 0.5, 7.0)
    if placed is None:
        return
    x, z, distance = placed
    sign, look = light_item.side, light_item.look  # the arm reaches over the road from this side
    item = RenderItem(LAYER_SCENE, distance, Footprint(x - 0.2, x + 0.2, z - 0.15, z + 0.15))
    registry, camera, light = builder.registry, builder.camera, builder.light
    pole_group = registry.add(POLE, texture=TEXTURE_METAL)
    head_group = registry.add(TRAFFIC_LIGHT, texture=TEXTURE_FLAT)
    polygons = item.polygons
    height = look.height_m
    if look.overhead:
        arm_height = height + 1.8
        _add_pole(builder, polygons, x, z, arm_height, 0.2, _TRAFFIC_LIGHT_POLE, pole_group)
        x_end = x - sign * float(min(6.0, builder.scene.layout.lane_width * 1.5))
        bottom, top = box_quads(min(x, x_end), max(x, x_end), arm_height - 0.15, arm_height, z - 0.08, z + 0.08)
        add_solid(bottom, top, camera.position, light, _TRAFFIC_LIGHT_POLE, pole_group, polygons)
        head_x, head_y = x_end + sign * 0.5, arm_height - 0.15 - 1.0
    else:
        _add_pole(builder, polygons, x, z, height, 0.13, _TRAFFIC_LIGHT_POLE, pole_group)
        head_x, head_y = x, height - 1.0
    bottom, top = box_quads(head_x - 0.17, head_x + 0.17, head_y, head_y + 1.0, z - 0.12, z + 0.12)
    add_solid(bottom, top, camera.position, light, _TRAFFIC_LIGHT_HOUSING, head_group, polygons)
    if not look.back:
        z_front = z - 0.13
        backplate = [[-0.26, head_y - 0.05], [0.26, head_y - 0.05], [0.26, head_y + 1.05], [-0.26, head_y + 1.05]]
        outline = in_vertical_plane((head_x, 0, z_front), (1.0, 0.0), backplate)
        polygons.append(Polygon(outline, (22, 22, 22), head_group, 0.0))
        for i, signal in enumerate(_SIGNAL_COLOURS):
            lit = (2 - i) == look.state
            colour = signal if lit else scale_colour(signal, 0.22)
            group = registry.add(TRAFFIC_LIGHT, emission=signal, texture=TEXTURE_FLAT) if lit else head_group
            disc = ellipse(12, 0, head_y + 0.18 + 0.32 * i, 0.11, 0.11)
            polygons.append(
                Polygon(in_vertical_plane((head_x, 0, z_front - 0.01), (1.0, 0.0), disc), colour, group, 0.0)
            )
    builder.items.append(item)
