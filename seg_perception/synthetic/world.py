"""Records of the static world: what stands along the road, and how it looks.

The static world is generated in chunks of :data:`CHUNK_M` metres of road (see
:mod:`seg_perception.synthetic.roadside`); a chunk is a list of the records below, in the order
they were drawn (that order is also the order they are painted in when nothing else decides).
Positions: ``s`` is the arc position along the road (m, from the drive's start), ``side`` is +1
right / -1 left, ``offset_m`` is measured outwards from that side's kerb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.colours import Colour

CHUNK_M = 50.0  # the static world is generated in chunks of this length along the road
AHEAD_M = 240.0  # content is kept up to this far ahead of the camera
BEHIND_M = 40.0  # ... and this far behind it


class Crosswalk(NamedTuple):
    """A zebra crossing over the whole road from ``start_s`` to ``start_s + length_m``."""

    start_s: float
    length_m: float


class CrownBlob(NamedTuple):
    """One leaf cluster of a broadleaf tree: centre offset from the crown centre (m), radius, colour."""

    offset_u: float
    offset_y: float
    radius_m: float
    colour: Colour


@dataclass(frozen=True)
class TreeLook:
    conifer: bool
    crown_radius_m: float
    crown_base_m: float  # height of the bottom of the crown
    blobs: list[CrownBlob]  # painted in this order (lower blobs first)
    trunk_width_m: float
    trunk_colour: Colour
    green: Colour  # the conifer's colour


@dataclass(frozen=True)
class SignLook:
    kind: str  # round_red | round_blue | triangle | rect_blue | stop | diamond | rect_white
    height_m: float  # bottom of the sign plate
    size_m: float
    back: bool  # seen from behind (signs for the oncoming traffic)
    extra_plate: bool


@dataclass(frozen=True)
class TrafficLightLook:
    overhead: bool  # on a mast arm over the road
    state: int  # 0 green, 1 amber, 2 red
    height_m: float
    back: bool


@dataclass(frozen=True)
class BuildingLook:
    height_m: float
    floor_height_m: float
    floors: int
    colour: Colour
    depth_m: float
    window_width_m: float
    window_height_m: float
    window_spacing_m: float
    window_columns: int
    lit: npt.NDArray[np.bool_]  # (floors, window_columns): windows lit at night
    glass: Colour
    frame: Colour
    cornice: Colour
    shop: bool  # shop windows on the ground floor
    shop_colour: Colour


@dataclass(frozen=True)
class StreetLamp:
    side: int
    s: float
    offset_m: float
    height_m: float


@dataclass(frozen=True)
class Tree:
    side: int
    s: float
    offset_m: float
    look: TreeLook


@dataclass(frozen=True)
class TrafficSign:
    side: int
    s: float
    offset_m: float
    look: SignLook


@dataclass(frozen=True)
class TrafficLight:
    side: int
    s: float
    offset_m: float
    look: TrafficLightLook


@dataclass(frozen=True)
class Stretch:
    """Something that runs along one side of the road from ``start_s`` to ``end_s`` (metres
    along the road), ``offset_m`` from the kerb; ``side`` is +1 right, -1 left."""

    side: int
    start_s: float
    end_s: float
    offset_m: float


@dataclass(frozen=True)
class Building(Stretch):
    look: BuildingLook  # offset_m is the façade; the building extends ``look.depth_m`` outwards


@dataclass(frozen=True)
class Wall(Stretch):
    height_m: float
    colour: Colour


@dataclass(frozen=True)
class Fence(Stretch):
    height_m: float
    colour: Colour
    style: str  # bars | boards


@dataclass(frozen=True)
class Hedge(Stretch):
    height_m: float
    thickness_m: float
    colour: Colour


StaticItem: TypeAlias = Crosswalk | StreetLamp | Tree | TrafficSign | TrafficLight | Building | Wall | Fence | Hedge


# The far backdrop (skyline and tree lines), at fixed distances ahead of the camera.
@dataclass(frozen=True)
class SkylineBlock:
    distance_m: float
    x0: float  # lateral extent, camera-relative (m)
    x1: float
    height_m: float
    colour: Colour


@dataclass(frozen=True)
class Treeline:
    distance_m: float
    x0: float
    x1: float
    tops_m: npt.NDArray[np.float64]  # heights of the crowns, evenly spaced from x0 to x1
    colour: Colour


BackdropItem: TypeAlias = SkylineBlock | Treeline
