"""Painter of cars, trucks and buses: boxes for body, cabin and tyres, and flat decals (windows,
lamps, grille, wheels) on their faces.

Vehicles are modelled in local coordinates (a: lateral, y: up, l: along the heading, origin at
the centre of the footprint); ``l < 0`` is the rear. Decals are collected in local coordinates
and transformed in one batch; they sit 1-1.5 cm in front of their face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from seg_perception.synthetic.agent_looks import BusLook, CarLook, TruckLook
from seg_perception.synthetic.colours import BLACK, Colour, scale_colour
from seg_perception.synthetic.geometry import (
    FACE_FRONT,
    FACE_LEFT,
    FACE_REAR,
    FACE_RIGHT,
    BoolArray,
    FaceColours,
    PointsLike,
    Polygon,
    add_solids,
    box_vertices,
    inset_quad,
    local_to_road,
    unit_circle,
)
from seg_perception.synthetic.registry import TEXTURE_FLAT, TEXTURE_VEHICLE, ObjectRegistry
from seg_perception.synthetic.traffic import Agent

if TYPE_CHECKING:
    from seg_perception.synthetic.builder import SceneBuilder

_TYRE = (24, 24, 26)
_REAR_LAMP, _REAR_LIGHT = (200, 20, 24), (255, 50, 40)  # colour, and emission when on
_HEAD_LAMP, _HEAD_LIGHT = (240, 240, 225), (255, 250, 235)
_SIDE_FACES = ((1, FACE_RIGHT), (-1, FACE_LEFT))  # (sign of the lateral axis, face)
# Car cabin: how far the top of the cabin is set back at the rear and the front (m).
_REAR_SLOPE = {"sedan": 0.55, "hatch": 0.28, "suv": 0.22, "van": 0.12}
_FRONT_SLOPE = {"sedan": 0.75, "hatch": 0.7, "suv": 0.55, "van": 0.45}
# Car windows: (cabin face, its corners in cabin vertex order, (u margin, bottom margin, top margin)).
_CAR_WINDOWS = (
    (FACE_REAR, (0, 1, 5, 4), (0.09, 0.12, 0.1)),
    (FACE_FRONT, (2, 3, 7, 6), (0.07, 0.1, 0.08)),
    (FACE_RIGHT, (1, 2, 6, 5), (0.06, 0.14, 0.12)),
    (FACE_LEFT, (3, 0, 4, 7), (0.06, 0.14, 0.12)),
)


def across_quad(a0: float, a1: float, y0: float, y1: float, l_pos: float) -> list[list[float]]:
    """Local quad on a face across the vehicle (its front or rear) at ``l_pos``."""
    return [[a0, y0, l_pos], [a1, y0, l_pos], [a1, y1, l_pos], [a0, y1, l_pos]]


def side_quad(a_pos: float, y0: float, y1: float, l0: float, l1: float) -> list[list[float]]:
    """Local quad on a side face at lateral ``a_pos``."""
    return [[a_pos, y0, l0], [a_pos, y0, l1], [a_pos, y1, l1], [a_pos, y1, l0]]


class _Decals:
    """Decals of one vehicle in local coordinates, and the groups of its lamps."""

    def __init__(self, registry: ObjectRegistry, agent: Agent, instance: int) -> None:
        self.registry, self.label, self.instance = registry, agent.label, instance
        self.lights_on = agent.lane is not None  # parked vehicles have their lights off
        self.shapes: list[tuple[PointsLike, Colour, int]] = []

    def add(self, points: PointsLike, colour: Colour, group: int) -> None:
        self.shapes.append((points, colour, group))

    def lamp_group(self, emission: Colour) -> int:
        """A group for lamps glowing with ``emission`` at night (when the lights are on)."""
        return self.registry.add(
            self.label, self.instance, emission=emission if self.lights_on else BLACK, texture=TEXTURE_FLAT
        )

    def flush(self, x: float, z: float, heading: float, out: list[Polygon]) -> None:
        if not self.shapes:
            return
        arrays = [np.asarray(points, float) for points, _, _ in self.shapes]
        road = local_to_road(x, z, heading, np.concatenate(arrays))
        offset = 0
        for array, (_, colour, group) in zip(arrays, self.shapes):
            out.append(Polygon(road[offset : offset + len(array)], colour, group, 0.0))
            offset += len(array)


def paint_vehicle(builder: SceneBuilder, agent: Agent, z: float) -> None:
    """A car, truck or bus at camera-relative ``z``; culled beyond 130 m (parked) or 190 m
    (moving); tyres, lamps and wheels only where the vehicle is more than 14 pixels wide."""
    look = agent.look
    assert isinstance(look, CarLook | TruckLook | BusLook)
    length, width = look.length_m, look.width_m
    item = builder.agent_item(agent, z, width / 2)
    if item.distance > (130.0 if agent.speed == 0 else 190.0):
        return
    registry = builder.registry
    instance = agent.label * 1000 + agent.instance
    body_group = registry.add(agent.label, instance, texture=TEXTURE_VEHICLE)
    flat_group = registry.add(agent.label, instance, texture=TEXTURE_FLAT)
    detail = builder.pixels_per_metre(item.distance + 1.0) * width > 14
    radius = look.wheel_radius_m
    axles = _axles(look)
    boxes: list[list[list[float]]] = []
    colours: list[FaceColours] = []
    groups: list[int] = []
    if detail:
        # tyres: their tread shows below the body from behind and in front
        for axle in axles:
            for sign in (-1, 1):
                a_out, a_in = sign * (width / 2 - 0.03), sign * (width / 2 - 0.28)
                lo, hi = min(a_in, a_out), max(a_in, a_out)
                boxes.append(box_vertices(lo, hi, 0.0, radius * 1.1, axle - radius * 0.55, axle + radius * 0.55))
                colours.append(_TYRE)
                groups.append(flat_group)
    n_tyres = len(boxes)
    cabin: list[list[float]] = []
    if isinstance(look, CarLook):
        cabin = _car_cabin(look)
        boxes += [_car_body(look), cabin]
        colours += [look.colour, [None, look.colour, look.colour, look.colour, look.colour, look.colour]]
        groups += [body_group, body_group]
    elif isinstance(look, TruckLook):
        cab_rear = length / 2 - 2.2
        boxes += [
            box_vertices(-width / 2, width / 2, 0.5, look.cab_height_m, cab_rear, length / 2),  # cab
            box_vertices(-width / 2 + 0.3, width / 2 - 0.3, 0.5, 1.0, -length / 2 + 0.4, cab_rear),  # chassis
            box_vertices(-width / 2, width / 2, 1.0, look.height_m, -length / 2, cab_rear - 0.25),  # cargo box
        ]
        colours += [look.colour, (40, 40, 42), look.cargo]
        groups += [body_group, flat_group, body_group]
    else:
        boxes.append(box_vertices(-width / 2, width / 2, 0.35, look.height_m, -length / 2, length / 2))
        colours.append(look.colour)
        groups.append(body_group)
    road_boxes = local_to_road(agent.x, z, agent.heading, np.array(boxes, float))
    visible = add_solids(road_boxes, colours, groups, builder.camera.position, builder.light, item.polygons)
    decals = _Decals(registry, agent, instance)
    wheel_faces = visible[n_tyres]  # faces whose wheels show: the body's (the truck's: see below)
    if isinstance(look, CarLook):
        _car_windows(look, cabin, visible[n_tyres + 1], decals, flat_group)
    if detail:
        if isinstance(look, CarLook):
            _car_lamps(look, visible[n_tyres], decals, flat_group)
        elif isinstance(look, TruckLook):
            cab, cargo = visible[n_tyres], visible[n_tyres + 2]
            _truck_decals(look, cab, cargo, decals, flat_group)
            # the cab's wheels where the cab's sides show, else those below the chassis
            wheel_faces = visible[n_tyres + 1] if not (cab[FACE_RIGHT] or cab[FACE_LEFT]) else cab
        else:
            _bus_decals(look, visible[n_tyres], decals, flat_group)
        _wheels(width, radius, axles, wheel_faces, decals, flat_group)
    decals.flush(agent.x, z, agent.heading, item.polygons)
    # contact shadow on the ground
    shadow = [
        [-width / 2 - 0.15, 0, -length / 2 - 0.2],
        [width / 2 + 0.15, 0, -length / 2 - 0.2],
        [width / 2 + 0.15, 0, length / 2 + 0.2],
        [-width / 2 - 0.15, 0, length / 2 + 0.2],
    ]
    builder.shadows.append(local_to_road(agent.x, z, agent.heading, shadow))
    builder.items.append(item)


def _axles(look: CarLook | TruckLook | BusLook) -> tuple[float, ...]:
    """Local l of each axle."""
    length = look.length_m
    if isinstance(look, CarLook):
        return (length / 2 - look.hood_m * 0.62, -length / 2 + max(0.75, look.trunk_m * 0.8 + 0.2))
    if isinstance(look, TruckLook):
        return (length / 2 - 1.3, -length / 2 + 1.2, -length / 2 + 2.5)
    return (length / 2 - 2.6, -length / 2 + 3.0)


def _car_clearance(look: CarLook) -> float:
    return 0.3 if look.variant != "suv" else 0.38


def _car_body(look: CarLook) -> list[list[float]]:
    length, width = look.length_m, look.width_m
    body = box_vertices(-width / 2, width / 2, _car_clearance(look), look.belt_m, -length / 2, length / 2)
    for i in range(4, 8):
        body[i][0] *= 0.97  # slightly rounded shoulder
    return body


def _car_cabin(look: CarLook) -> list[list[float]]:
    """The greenhouse: 8 vertices from the belt line up to the roof, set back at both ends."""
    length, width, belt, height = look.length_m, look.width_m, look.belt_m, look.height_m
    inset, roof_inset = 0.07, 0.2
    rear_slope, front_slope = _REAR_SLOPE[look.variant], _FRONT_SLOPE[look.variant]
    rear, front = -length / 2 + look.trunk_m, length / 2 - look.hood_m
    return [
        [-width / 2 + inset, belt, rear],
        [width / 2 - inset, belt, rear],
        [width / 2 - inset, belt, front],
        [-width / 2 + inset, belt, front],
        [-width / 2 + roof_inset, height, rear + rear_slope],
        [width / 2 - roof_inset, height, rear + rear_slope],
        [width / 2 - roof_inset, height, front - front_slope],
        [-width / 2 + roof_inset, height, front - front_slope],
    ]


def _car_windows(
    look: CarLook, cabin: list[list[float]], cabin_faces: BoolArray, decals: _Decals, flat_group: int
) -> None:
    """Windows inset into the visible cabin faces: rear window, windscreen, side windows split by a B pillar."""
    corners = np.array(cabin)
    glass = scale_colour(look.glass, 0.95)
    for face, quad_index, (margin_u, margin_bottom, margin_top) in _CAR_WINDOWS:
        if not cabin_faces[face]:
            continue
        quad = corners[list(quad_index)]
        if face in (FACE_RIGHT, FACE_LEFT):
            for u0, u1 in ((margin_u, 0.47), (0.53, 1 - margin_u)):
                decals.add(inset_quad(quad, u0, u1, margin_bottom, margin_top), glass, flat_group)
        else:
            decals.add(inset_quad(quad, margin_u, 1 - margin_u, margin_bottom, margin_top), glass, flat_group)


def _car_lamps(look: CarLook, body_faces: BoolArray, decals: _Decals, flat_group: int) -> None:
    """Bumper, number plate, grille (front) and the lamp pair on the visible end of the car."""
    length, width, belt = look.length_m, look.width_m, look.belt_m
    clearance = _car_clearance(look)
    near_rear, near_front = body_faces[FACE_REAR], body_faces[FACE_FRONT]
    if not (near_rear or near_front):
        return
    l_pos = -length / 2 - 0.01 if near_rear else length / 2 + 0.01
    decals.add(
        across_quad(-width / 2, width / 2, clearance, clearance + 0.16, l_pos),
        scale_colour(look.colour, 0.55),
        flat_group,
    )
    decals.add(across_quad(-0.26, 0.26, clearance + 0.2, clearance + 0.32, l_pos), (230, 230, 222), flat_group)
    if near_front:
        decals.add(across_quad(-0.42, 0.42, clearance + 0.36, belt - 0.14, l_pos), (30, 32, 34), flat_group)
    colour, emission = (_REAR_LAMP, _REAR_LIGHT) if near_rear else (_HEAD_LAMP, _HEAD_LIGHT)
    lamp_group = decals.lamp_group(emission)
    for sign in (-1, 1):
        quad = across_quad(sign * (width / 2 - 0.05), sign * (width / 2 - 0.34), belt - 0.22, belt - 0.07, l_pos)
        decals.add(quad, colour, lamp_group)


def _truck_decals(look: TruckLook, cab: BoolArray, cargo: BoolArray, decals: _Decals, flat_group: int) -> None:
    """Windscreen, grille and headlamps on the cab, side windows, and the cargo box's doors and tail lamps."""
    length, width, height, cab_height = look.length_m, look.width_m, look.height_m, look.cab_height_m
    if cab[FACE_FRONT]:
        front = length / 2 + 0.01
        windscreen = [
            [-width / 2 + 0.12, cab_height - 1.15, front],
            [width / 2 - 0.12, cab_height - 1.15, front],
            [width / 2 - 0.15, cab_height - 0.2, front],
            [-width / 2 + 0.15, cab_height - 0.2, front],
        ]
        decals.add(windscreen, look.glass, flat_group)
        decals.add(across_quad(-width / 2 + 0.1, width / 2 - 0.1, 0.55, 0.8, front), (40, 40, 42), flat_group)
        lamp_group = decals.lamp_group(_HEAD_LIGHT)
        for sign in (-1, 1):
            quad = across_quad(sign * (width / 2 - 0.1), sign * (width / 2 - 0.4), 0.85, 1.0, front)
            decals.add(quad, (235, 235, 220), lamp_group)
    for sign, face in _SIDE_FACES:
        if cab[face]:
            quad = side_quad(
                sign * (width / 2 + 0.01), cab_height - 1.1, cab_height - 0.3, length / 2 - 1.2, length / 2 - 0.25
            )
            decals.add(quad, look.glass, flat_group)
    if cargo[FACE_REAR]:
        rear = -length / 2 - 0.01
        decals.add(across_quad(-0.03, 0.03, 1.05, height - 0.05, rear), scale_colour(look.cargo, 0.6), flat_group)
        lamp_group = decals.lamp_group(_REAR_LIGHT)
        for sign in (-1, 1):
            quad = across_quad(sign * (width / 2 - 0.08), sign * (width / 2 - 0.35), 1.05, 1.22, rear)
            decals.add(quad, _REAR_LAMP, lamp_group)


def _bus_decals(look: BusLook, body: BoolArray, decals: _Decals, flat_group: int) -> None:
    """Window bands and the door on the sides, windscreen, destination display and lamps."""
    length, width, height, glass = look.length_m, look.width_m, look.height_m, look.glass
    for sign, face in _SIDE_FACES:
        if body[face]:
            a_pos = sign * (width / 2 + 0.01)
            decals.add(side_quad(a_pos, 1.2, height - 0.4, -length / 2 + 0.5, length / 2 - 0.7), glass, flat_group)
            door = side_quad(a_pos * 1.001, 0.4, height - 0.35, length / 2 - 1.9, length / 2 - 0.8)
            decals.add(door, scale_colour(glass, 0.8), flat_group)
    if body[FACE_FRONT]:
        front = length / 2 + 0.01
        decals.add(across_quad(-width / 2 + 0.1, width / 2 - 0.1, 1.0, height - 0.38, front), glass, flat_group)
        display_group = decals.lamp_group((255, 160, 40))
        display = across_quad(-width / 2 + 0.25, width / 2 - 0.25, height - 0.33, height - 0.1, front)
        decals.add(display, (240, 150, 40), display_group)
        lamp_group = decals.lamp_group(_HEAD_LIGHT)
        for sign in (-1, 1):
            quad = across_quad(sign * (width / 2 - 0.1), sign * (width / 2 - 0.45), 0.6, 0.78, front)
            decals.add(quad, (235, 235, 220), lamp_group)
    if body[FACE_REAR]:
        rear = -length / 2 - 0.01
        decals.add(across_quad(-width / 2 + 0.3, width / 2 - 0.3, height - 1.3, height - 0.4, rear), glass, flat_group)
        lamp_group = decals.lamp_group(_REAR_LIGHT)
        for sign in (-1, 1):
            quad = across_quad(sign * (width / 2 - 0.08), sign * (width / 2 - 0.3), 0.7, 1.1, rear)
            decals.add(quad, _REAR_LAMP, lamp_group)


def _wheels(
    width: float, radius: float, axles: tuple[float, ...], faces: BoolArray, decals: _Decals, flat_group: int
) -> None:
    """Wheels seen from the side: a dark arch, the tyre disc and the hub, on each visible side."""
    cos, sin = unit_circle(12)
    upper = sin >= -0.05
    for sign, face in _SIDE_FACES:
        if not faces[face]:
            continue
        a_pos = sign * (width / 2 + 0.015)
        for axle in axles:
            arch_l = np.concatenate([[axle + radius * 1.18], axle + radius * 1.18 * cos[upper], [axle - radius * 1.18]])
            arch_y = np.concatenate([[radius - 0.02], radius + radius * 1.18 * sin[upper], [radius - 0.02]])
            decals.add(np.stack([np.full(len(arch_l), a_pos), arch_y, arch_l], 1), (18, 18, 20), flat_group)
            tyre = np.stack([np.full(12, a_pos * 1.002), radius + radius * sin, axle + radius * cos], 1)
            decals.add(tyre, _TYRE, flat_group)
            hub = np.stack([np.full(12, a_pos * 1.004), radius + 0.55 * radius * sin, axle + 0.55 * radius * cos], 1)
            decals.add(hub, (150, 152, 156), flat_group)
