"""The scene builder: turns the scene around the camera into render items.

Items are 3-D polygons in road coordinates relative to the camera (z = arc position minus the
camera's). The builder culls what is behind the camera, outside the horizontal field of view
or beyond the content window, and the painters (one per kind of object, found through explicit
tables below) simplify what is too small in the image to show detail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic import people, street_furniture, structures, vehicles
from seg_perception.synthetic.camera import Camera
from seg_perception.synthetic.geometry import FloatArray, Polygon
from seg_perception.synthetic.items import LAYER_BACKDROP, LAYER_SCENE, Footprint, LampPool, RenderItem
from seg_perception.synthetic.label_ids import BUILDING, VEGETATION
from seg_perception.synthetic.registry import TEXTURE_BUILDING, TEXTURE_VEGETATION, ObjectRegistry
from seg_perception.synthetic.scene import Scene
from seg_perception.synthetic.traffic import Agent
from seg_perception.synthetic.world import (
    AHEAD_M,
    Building,
    Crosswalk,
    Fence,
    Hedge,
    SkylineBlock,
    StaticItem,
    StreetLamp,
    TrafficLight,
    TrafficSign,
    Tree,
    Wall,
)

# A painter draws one static item. The table cannot say that each painter takes exactly the
# record type it is listed under, hence Any for the item; add_static looks painters up by type.
StaticPainter = Callable[["SceneBuilder", Any], None]
AgentPainter = Callable[["SceneBuilder", Agent, float], None]


def _crosswalk_painter(builder: SceneBuilder, crosswalk: Crosswalk) -> None:
    """Nothing to add: crosswalks are painted per pixel by the ground pass."""


_STATIC_PAINTERS: dict[type, StaticPainter] = {
    Crosswalk: _crosswalk_painter,
    Building: structures.paint_building,
    Wall: structures.paint_wall,
    Hedge: structures.paint_hedge,
    Fence: structures.paint_fence,
    Tree: street_furniture.paint_tree,
    StreetLamp: street_furniture.paint_street_lamp,
    TrafficSign: street_furniture.paint_traffic_sign,
    TrafficLight: street_furniture.paint_traffic_light,
}
_AGENT_PAINTERS: dict[str, AgentPainter] = {
    "car": vehicles.paint_vehicle,
    "truck": vehicles.paint_vehicle,
    "bus": vehicles.paint_vehicle,
    "person": people.paint_pedestrian,
    "bicycle": people.paint_bicycle,
    "motorcycle": people.paint_motorcycle,
}


class Placement(NamedTuple):
    """Where a roadside item stands: road x, camera-relative z, distance from the camera (m)."""

    x: float
    z: float
    distance: float


class SceneBuilder:
    """Collects the render items, ground shadows and lamp pools of the scene seen from
    ``camera`` at arc position ``camera_s``; object groups go into ``registry``."""

    def __init__(self, scene: Scene, camera: Camera, camera_s: float, registry: ObjectRegistry, condition: str) -> None:
        self.scene, self.camera, self.camera_s, self.registry = scene, camera, camera_s, registry
        self.light = scene.light
        self.items: list[RenderItem] = []
        self.shadows: list[FloatArray] = []  # (4, 3) ground quads darkened under objects
        self.lamp_pools: list[LampPool] = []
        self.night = condition in ("night", "dusk")  # lights are switched on
        # tangent of half the horizontal field of view, with a 2-pixel margin
        self.tan_half_fov = (camera.width / 2.0 + 2.0) / camera.fx

    def pixels_per_metre(self, distance: float) -> float:
        """Image scale (pixels per metre) of something ``distance`` metres away."""
        return self.camera.fy / max(distance, 0.3)

    def distance(self, x: float, z: float) -> float:
        """Distance (m) from the camera to the road point (x, z) on the ground."""
        return self.camera.ground_distance(x, z)

    def in_view(self, x: float, z: float, radius: float) -> bool:
        """Whether a vertical object of ``radius`` (m) at road (x, z) can be inside the horizontal FOV."""
        camera = self.camera
        x_bent = x + 0.5 * camera.curvature * z * z - camera.lateral_x
        x_turned = camera.cos_yaw * x_bent - camera.sin_yaw * z
        z_turned = camera.sin_yaw * x_bent + camera.cos_yaw * z
        return z_turned > -radius and abs(x_turned) - radius < z_turned * self.tan_half_fov + radius

    def in_view_array(
        self, x: npt.NDArray[np.floating], z: npt.NDArray[np.floating], radius: float
    ) -> npt.NDArray[np.bool_]:
        """:meth:`in_view` of arrays of positions."""
        camera = self.camera
        x_bent = x + 0.5 * camera.curvature * z * z - camera.lateral_x
        x_turned = camera.cos_yaw * x_bent - camera.sin_yaw * z
        z_turned = camera.sin_yaw * x_bent + camera.cos_yaw * z
        visible: npt.NDArray[np.bool_] = (z_turned > -radius) & (
            np.abs(x_turned) - radius < z_turned * self.tan_half_fov + radius
        )
        return visible

    def place(self, item: TrafficSign | TrafficLight | Tree, z_min: float, margin: float) -> Placement | None:
        """Where a roadside item stands, or None when it is nearer than ``z_min``, beyond the
        content window or out of view (with ``margin`` metres of slack for its size)."""
        z = item.s - self.camera_s
        if z < z_min or z > AHEAD_M:
            return None
        x = self.scene.layout.side(item.side).x(item.offset_m)
        if not self.in_view(x, z, margin):
            return None
        return Placement(x, z, self.distance(x, z))

    def add_backdrop(self) -> None:
        """The far skyline and tree lines, hazed towards the horizon sky colour."""
        camera = self.camera
        building = self.registry.add(BUILDING, texture=TEXTURE_BUILDING)
        vegetation = self.registry.add(VEGETATION, texture=TEXTURE_VEGETATION)
        haze = np.array(self.scene.sky_horizon, float)
        for backdrop in self.scene.backdrop:
            d = backdrop.distance_m  # short: it is in every vertex below
            item = RenderItem(LAYER_BACKDROP, d, Footprint(0.0, 0.0, d, d))
            shift = -camera.bend(d) + camera.lateral_x  # the backdrop does not bend with the road
            x0, x1 = backdrop.x0, backdrop.x1
            if isinstance(backdrop, SkylineBlock):
                r, g, b = (int(v) for v in 0.45 * np.array(backdrop.colour) + 0.55 * haze)
                height = backdrop.height_m
                points = np.array([[x0, -3, d], [x1, -3, d], [x1, height, d], [x0, height, d]], float)
                points[:, 0] += shift
                item.polygons.append(Polygon(points, (r, g, b), building, 0.0))
            else:
                r, g, b = (int(v) for v in 0.6 * np.array(backdrop.colour) + 0.4 * haze)
                tops = backdrop.tops_m
                xs = np.linspace(x0, x1, len(tops))
                crowns = np.stack([xs, tops, np.full(len(tops), d)], 1)
                points = np.concatenate([[[x0, -3, d]], crowns, [[x1, -3, d]]])
                points[:, 0] += shift
                item.polygons.append(Polygon(points, (r, g, b), vegetation, 0.0))
            self.items.append(item)

    def add_static(self, item: StaticItem) -> None:
        """Paint one static item through the painter table (culling is the painter's)."""
        _STATIC_PAINTERS[type(item)](self, item)

    def add_agent(self, agent: Agent) -> None:
        """Paint one agent if its footprint can be in view."""
        z = agent.s - self.camera_s
        half_length = agent.half_length
        if z + half_length < -2.0 or z - half_length > AHEAD_M or not self.in_view(agent.x, z, half_length + 1.5):
            return
        _AGENT_PAINTERS[agent.kind](self, agent, z)

    def agent_item(self, agent: Agent, z: float, half_width: float) -> RenderItem:
        """A render item for an agent ``half_width`` metres wide; its distance is that from the
        camera to the nearest point of the footprint (boxes around the heading)."""
        half_length = agent.half_length
        along, across = abs(math.cos(agent.heading)), abs(math.sin(agent.heading))
        extent_x, extent_z = half_width * along + half_length * across, half_length * along + half_width * across
        x = agent.x + self.camera.bend(z) - self.camera.lateral_x
        dx = max(0.0, abs(x) - extent_x)
        dz = max(0.0, abs(z) - extent_z)
        footprint = Footprint(agent.x - extent_x, agent.x + extent_x, z - extent_z, z + extent_z)
        return RenderItem(LAYER_SCENE, math.hypot(dx, dz), footprint)
