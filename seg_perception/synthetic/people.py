"""Painters of pedestrians and of riders on bicycles and motorcycles.

People are flat figures: 2-D outlines in units of their height (feet at 0, top of the head
at 1) drawn in a vertical plane: across the walking direction when seen from the front or
back, along it in profile. Limbs swing with the agent's stride phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from seg_perception.synthetic.agent_looks import PersonLook, TwoWheelerLook
from seg_perception.synthetic.colours import Colour, scale_colour
from seg_perception.synthetic.geometry import (
    FloatArray,
    PointsLike,
    Polygon,
    add_flat_shapes,
    add_solid,
    box_quads,
    ellipse,
    limb,
    local_to_road,
)
from seg_perception.synthetic.label_ids import PERSON, RIDER
from seg_perception.synthetic.registry import TEXTURE_CLOTH, TEXTURE_FLAT, TEXTURE_METAL
from seg_perception.synthetic.traffic import Agent

if TYPE_CHECKING:
    from seg_perception.synthetic.builder import SceneBuilder

Shapes = list[tuple[FloatArray, Colour]]
# line(points in local coordinates, colour, width in metres, group): a polyline of the vehicle
_Line = Callable[[PointsLike, Colour, float, int], None]

# Torso outlines (in heights): frontal / in profile, with a coat reaching further down.
_TORSO_FRONT = [[-0.1, 0.47], [0.1, 0.47], [0.13, 0.8], [0.06, 0.835], [-0.06, 0.835], [-0.13, 0.8]]
_COAT_FRONT = [[-0.12, 0.32], [0.12, 0.32], [0.13, 0.8], [0.06, 0.835], [-0.06, 0.835], [-0.13, 0.8]]
_TORSO_PROFILE = [[-0.075, 0.47], [0.07, 0.47], [0.08, 0.8], [0.02, 0.83], [-0.06, 0.83], [-0.085, 0.8]]
_COAT_PROFILE = [[-0.095, 0.33], [0.09, 0.33], [0.08, 0.8], [0.02, 0.83], [-0.06, 0.83], [-0.085, 0.8]]


def person_shapes(look: PersonLook, phase: float, profile: bool, facing_away: bool, simple: bool) -> Shapes:
    """Outlines (in metres) of a person ``look.height_m`` tall, back to front.

    ``profile``: seen from the side, walking towards +u; else seen from the front, or from the
    back when ``facing_away``. ``simple`` leaves out shoes, hands, neck and hair (far away).
    """
    height = look.height_m

    def scaled(points: PointsLike) -> FloatArray:
        return np.asarray(points, float) * height

    shapes: Shapes = []
    if look.standing:
        phase = 0.0
    swing = math.sin(phase)
    if profile:
        for sign, colour in ((-1, scale_colour(look.legs, 0.75)), (1, look.legs)):  # far leg first
            foot = (0.17 * swing * sign, 0.03)
            knee = (0.08 * swing * sign + 0.03, 0.27)
            shapes.append((scaled(limb((0.0, 0.5), knee, 0.085, 0.07)), colour))
            shapes.append((scaled(limb(knee, foot, 0.07, 0.055)), colour))
            if not simple:
                shoe = [[foot[0] - 0.03, 0.0], [foot[0] + 0.07, 0.0], [foot[0] + 0.06, 0.04], [foot[0] - 0.03, 0.05]]
                shapes.append((scaled(shoe), look.shoes))
        far_arm = limb((0.0, 0.79), (-0.12 * swing, 0.47), 0.055, 0.045)
        shapes.append((scaled(far_arm), scale_colour(look.top, 0.75)))
        shapes.append((scaled(_COAT_PROFILE if look.coat else _TORSO_PROFILE), look.top))
        if look.bag:
            shapes.append((scaled([[-0.14, 0.58], [-0.07, 0.58], [-0.07, 0.78], [-0.14, 0.76]]), look.bag_colour))
        shapes.append((scaled(limb((0.0, 0.79), (0.12 * swing, 0.47), 0.055, 0.045)), look.top))
        if not simple:
            shapes.append((scaled(ellipse(5, 0.12 * swing, 0.45, 0.025, 0.03)), look.skin))  # hand
        if not simple:
            shapes.append((scaled([[-0.02, 0.82], [0.025, 0.82], [0.025, 0.87], [-0.02, 0.87]]), look.skin))  # neck
        shapes.append((scaled(ellipse(10, 0.01, 0.925, 0.052, 0.066)), look.skin))
        if not simple:
            shapes.append((scaled(ellipse(8, -0.008, 0.948, 0.05, 0.048)), look.hair))
    else:
        lift = 0.025 * swing  # seen from the front, a stride only lifts one foot a little
        for sign in (-1, 1):
            foot_y = 0.03 + max(0.0, lift * sign)
            shapes.append((scaled(limb((sign * 0.05, 0.5), (sign * 0.055, foot_y), 0.085, 0.06)), look.legs))
            if not simple:
                shoe = [
                    [sign * 0.025, foot_y - 0.03],
                    [sign * 0.085, foot_y - 0.03],
                    [sign * 0.085, foot_y + 0.02],
                    [sign * 0.025, foot_y + 0.02],
                ]
                shapes.append((scaled(shoe), look.shoes))
        shapes.append((scaled(_COAT_FRONT if look.coat else _TORSO_FRONT), look.top))
        for sign in (-1, 1):
            hand = (sign * 0.16, 0.46 + 0.02 * swing * sign)
            shapes.append((scaled(limb((sign * 0.125, 0.79), hand, 0.055, 0.045)), scale_colour(look.top, 0.92)))
            if not simple:
                shapes.append((scaled(ellipse(5, hand[0], hand[1] - 0.015, 0.022, 0.03)), look.skin))
        if look.bag and facing_away:  # a backpack
            shapes.append((scaled([[-0.09, 0.55], [0.09, 0.55], [0.085, 0.78], [-0.085, 0.78]]), look.bag_colour))
        if not simple:
            shapes.append((scaled([[-0.025, 0.82], [0.025, 0.82], [0.025, 0.87], [-0.025, 0.87]]), look.skin))
        shapes.append((scaled(ellipse(10, 0.0, 0.925, 0.055, 0.068)), look.hair if facing_away else look.skin))
        if not facing_away:  # the hairline over the face
            fringe = [[-0.056, 0.935], [0.056, 0.935], [0.05, 0.975], [0.0, 0.995], [-0.05, 0.975]]
            shapes.append((scaled(fringe), look.hair))
    return shapes


def paint_pedestrian(builder: SceneBuilder, agent: Agent, z: float) -> None:
    """A walking or standing person; culled nearer than 0.4 m and beyond 110 m."""
    if z < 0.4:
        return
    item = builder.agent_item(agent, z, 0.25)
    if item.distance > 110.0:
        return
    look = agent.look
    assert isinstance(look, PersonLook)
    group = builder.registry.add(PERSON, PERSON * 1000 + agent.instance, texture=TEXTURE_CLOTH)
    x = agent.x
    profile = abs(math.sin(agent.heading)) > 0.7
    if profile:  # crossing: drawn in the plane of the walking direction
        axis = (1.0 if agent.heading > 0 else -1.0, 0.0)
    else:  # walking along the road: seen from the front or the back
        axis = (1.0, 0.0) if math.cos(agent.heading) > 0 else (-1.0, 0.0)
    simple = look.height_m * builder.pixels_per_metre(item.distance + 0.3) < 26  # under 26 pixels tall
    facing_away = math.cos(agent.heading) > 0
    shapes = person_shapes(look, agent.stride_phase, profile, facing_away, simple)
    add_flat_shapes(item.polygons, (x, 0.0, z), axis, shapes, group)
    builder.shadows.append(
        np.array([[x - 0.3, 0, z - 0.25], [x + 0.3, 0, z - 0.25], [x + 0.3, 0, z + 0.25], [x - 0.3, 0, z + 0.25]])
    )
    builder.items.append(item)


def paint_bicycle(builder: SceneBuilder, agent: Agent, z: float) -> None:
    _paint_two_wheeler(builder, agent, z, motor=False)


def paint_motorcycle(builder: SceneBuilder, agent: Agent, z: float) -> None:
    _paint_two_wheeler(builder, agent, z, motor=True)


def _paint_two_wheeler(builder: SceneBuilder, agent: Agent, z: float, motor: bool) -> None:
    """The vehicle (wheels and frame as polylines in local coordinates, a motorcycle's tank and
    seat as boxes) and its rider (flat figure); culled nearer than 0.8 m."""
    if z < 0.8:
        return
    item = builder.agent_item(agent, z, 0.35)
    look = agent.look
    assert isinstance(look, TwoWheelerLook)
    registry = builder.registry
    instance = agent.label * 1000 + agent.instance
    vehicle_group = registry.add(agent.label, instance, texture=TEXTURE_METAL)
    rider_group = registry.add(RIDER, RIDER * 1000 + agent.rider_instance, texture=TEXTURE_CLOTH)
    polygons = item.polygons
    x, heading = agent.x, agent.heading

    def line(points: PointsLike, colour: Colour, width_m: float, group: int) -> None:
        polygons.append(Polygon(local_to_road(x, z, heading, points), colour, group, width_m))

    if motor:
        seat_y, hip_l, bar = _motorcycle(builder, line, agent, z, look, vehicle_group, polygons)
    else:
        seat_y, hip_l, bar = _bicycle(line, look, vehicle_group)
    rider = look.rider
    head_colour = look.helmet if look.wears_helmet else rider.hair
    if abs(math.cos(heading)) > 0.7:
        # seen from behind (or the front): a frontal figure in the plane across the bike
        axis = (math.cos(heading), -math.sin(heading))  # lateral axis of the bike
        hip_r = local_to_road(x, z, heading, [[0.0, 0.0, hip_l]])[0]
        origin = (hip_r[0], hip_r[1], hip_r[2])
        shapes = _rider_from_behind(look, agent.stride_phase, seat_y, bar, head_colour)
    else:
        # side view: a profile figure in the bike's plane
        axis = (math.sin(heading), math.cos(heading))
        origin = (x, 0.0, z)
        shapes = _rider_in_profile(rider, agent.stride_phase, seat_y, hip_l, bar, head_colour)
    add_flat_shapes(polygons, origin, axis, shapes, rider_group)
    builder.shadows.append(
        local_to_road(x, z, heading, [[-0.3, 0, -1.0], [0.3, 0, -1.0], [0.3, 0, 1.0], [-0.3, 0, 1.0]])
    )
    builder.items.append(item)


def _wheel_outlines(line: _Line, radius: float, wheelbase: float, width: float, group: int) -> None:
    """Both wheels as 16-segment circles (local l = +-wheelbase)."""
    angles = np.linspace(0, 2 * np.pi, 17)
    for axle in (-wheelbase, wheelbase):
        circle = np.stack([np.zeros(17), radius + radius * np.sin(angles), axle + radius * np.cos(angles)], 1)
        line(circle, (22, 22, 24), width, group)


def _motorcycle(
    builder: SceneBuilder,
    line: _Line,
    agent: Agent,
    z: float,
    look: TwoWheelerLook,
    group: int,
    polygons: list[Polygon],
) -> tuple[float, float, tuple[float, float]]:
    """Wheels, rims, engine block and seat, fork, handlebar and lamps. Returns the rider's seat
    height, hip position (local l) and handlebar grip (height, l)."""
    radius, wheelbase = 0.31, 0.72
    _wheel_outlines(line, radius, wheelbase, 0.1, group)
    angles = np.linspace(0, 2 * np.pi, 17)[::2]
    for axle in (-wheelbase, wheelbase):
        rim = np.stack([np.zeros(9), radius + 0.55 * radius * np.sin(angles), axle + 0.55 * radius * np.cos(angles)], 1)
        line(rim, (150, 150, 155), 0.04, group)
    x, heading = agent.x, agent.heading
    camera, light = builder.camera.position, builder.light
    for box, colour in (
        ((-0.17, 0.17, 0.32, 0.8, -0.45, 0.5), look.frame),
        ((-0.14, 0.14, 0.8, 0.9, -0.6, 0.05), (28, 28, 30)),
    ):
        bottom, top = box_quads(*box)
        add_solid(
            local_to_road(x, z, heading, bottom),
            local_to_road(x, z, heading, top),
            camera,
            light,
            colour,
            group,
            polygons,
        )
    line([[0, radius, wheelbase], [0, 1.0, wheelbase - 0.18]], (160, 160, 165), 0.05, group)  # fork
    line([[-0.35, 1.05, wheelbase - 0.2], [0.35, 1.05, wheelbase - 0.2]], (40, 40, 40), 0.035, group)  # handlebar
    label, instance = agent.label, agent.label * 1000 + agent.instance
    head_group = builder.registry.add(label, instance, emission=(255, 248, 230), texture=TEXTURE_FLAT)
    tail_group = builder.registry.add(label, instance, emission=(255, 50, 40), texture=TEXTURE_FLAT)
    line([[0, 0.88, wheelbase - 0.1], [0, 0.92, wheelbase - 0.1]], (240, 240, 220), 0.12, head_group)
    line([[0, 0.86, -0.62], [0, 0.88, -0.62]], (200, 20, 20), 0.1, tail_group)
    return 0.92, -0.2, (1.05, wheelbase - 0.2)


def _bicycle(line: _Line, look: TwoWheelerLook, group: int) -> tuple[float, float, tuple[float, float]]:
    """Wheels and a diamond frame; returns what :func:`_motorcycle` returns."""
    radius, wheelbase = 0.34, 0.52
    _wheel_outlines(line, radius, wheelbase, 0.04, group)
    bottom_bracket, seat, head_tube = (0.0, 0.3), (-0.15, 0.86), (0.42, 0.9)

    def local(points: Sequence[tuple[float, float]]) -> list[list[float]]:  # (l, y) pairs in the bike's plane
        return [[0, y, l_pos] for l_pos, y in points]

    frame = look.frame
    line(local([(-wheelbase, radius), bottom_bracket, seat, (-wheelbase, radius)]), frame, 0.035, group)
    line(local([seat, head_tube, bottom_bracket]), frame, 0.035, group)
    line(local([head_tube, (wheelbase, radius)]), frame, 0.03, group)
    line(local([head_tube, (0.4, 1.02)]), frame, 0.03, group)
    line([[-0.27, 1.02, 0.4], [0.27, 1.02, 0.4]], (40, 40, 40), 0.03, group)  # handlebar
    line([[0, 0.9, -0.24], [0, 0.9, -0.06]], (30, 30, 30), 0.06, group)  # saddle
    return 0.93, -0.15, (1.02, 0.4)


def _rider_from_behind(
    look: TwoWheelerLook, phase: float, seat_y: float, bar: tuple[float, float], head_colour: Colour
) -> Shapes:
    """Frontal rider outline (metres, u lateral): pedalling legs, torso, arms to the grips, head."""
    rider = look.rider
    shapes: Shapes = []
    for sign in (-1, 1):
        knee = (sign * 0.17, 0.66)
        foot = (sign * 0.15, 0.32 + 0.08 * sign * math.sin(phase))
        shapes.append((limb((sign * 0.1, seat_y + 0.02), knee, 0.13, 0.11), rider.legs))
        shapes.append((limb(knee, foot, 0.11, 0.09), rider.legs))
    torso = [
        [-0.15, seat_y],
        [0.15, seat_y],
        [0.2, seat_y + 0.5],
        [0.07, seat_y + 0.55],
        [-0.07, seat_y + 0.55],
        [-0.2, seat_y + 0.5],
    ]
    shapes.append((np.array(torso, float), rider.top))
    for sign in (-1, 1):
        arm = limb((sign * 0.18, seat_y + 0.48), (sign * 0.27, bar[0] + 0.02), 0.085, 0.07)
        shapes.append((arm, scale_colour(rider.top, 0.9)))
    neck = [[-0.04, seat_y + 0.53], [0.04, seat_y + 0.53], [0.04, seat_y + 0.6], [-0.04, seat_y + 0.6]]
    shapes.append((np.array(neck, float), rider.skin))
    head_width = 0.1 if look.wears_helmet else 0.09
    shapes.append((ellipse(10, 0.0, seat_y + 0.7, head_width, 0.12), head_colour))
    return shapes


def _rider_in_profile(
    rider: PersonLook, phase: float, seat_y: float, hip_l: float, bar: tuple[float, float], head_colour: Colour
) -> Shapes:
    """Profile rider outline (metres, u along the bike): legs on the pedal circle, torso leaning
    to the handlebar, arm, head."""
    shapes: Shapes = []
    hip = (hip_l, seat_y + 0.03)
    shoulder = (hip_l + 0.28, seat_y + 0.5)
    for leg, colour in ((0, scale_colour(rider.legs, 0.75)), (1, rider.legs)):  # far leg first
        angle = phase + leg * math.pi  # the pedals are half a turn apart
        foot = (0.0 + 0.16 * math.cos(angle), 0.3 + 0.16 * math.sin(angle))
        knee = ((hip[0] + foot[0]) / 2 + 0.2, (hip[1] + foot[1]) / 2 + 0.05)
        shapes.append((limb(hip, knee, 0.13, 0.1), colour))
        shapes.append((limb(knee, foot, 0.1, 0.08), colour))
    shapes.append((limb(hip, shoulder, 0.22, 0.2), rider.top))
    shapes.append((limb(shoulder, (bar[1], bar[0] + 0.02), 0.08, 0.065), scale_colour(rider.top, 0.9)))
    shapes.append((ellipse(10, shoulder[0] + 0.06, shoulder[1] + 0.17, 0.1, 0.12), head_colour))
    return shapes
