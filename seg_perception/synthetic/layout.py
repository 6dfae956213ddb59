"""The road's cross-section: lanes, parking strips, kerbs, and the ground bands and building
line on each side. All x positions are road x (m, right of the centre line)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.params import SceneParams

# Marking type per lane boundary (values of RoadLayout.line_types, decoded by the ground pass).
LINE_NONE = 0
LINE_DASHED_WHITE = 1
LINE_SOLID_WHITE = 2
LINE_SOLID_YELLOW = 3
LINE_DOUBLE_YELLOW = 4
LINE_DASHED_YELLOW = 5
LINE_DOUBLE_WHITE = 6
_CENTRE_LINE_TYPES = {"dashed": LINE_DASHED_WHITE, "solid": LINE_SOLID_WHITE, "double": LINE_DOUBLE_WHITE}
_YELLOW_VARIANT = {
    LINE_DASHED_WHITE: LINE_DASHED_YELLOW,
    LINE_SOLID_WHITE: LINE_SOLID_YELLOW,
    LINE_DOUBLE_WHITE: LINE_DOUBLE_YELLOW,
}

PARKING_STRIP_M = 2.3  # width of a parking strip beside the outer lane
ROAD_SHOULDER_M = 0.35  # asphalt between the outer lane line and the kerb where nobody parks
KERB_WIDTH_M = 0.18


class GroundBand(NamedTuple):
    """A strip of ground beside the kerb, ending ``outer_m`` beyond it: "sidewalk" or "terrain"."""

    outer_m: float
    surface: str


class RoadSide:
    """One side of the road: the kerb at road x ``kerb_x``, ground bands outwards from it (offsets
    in metres beyond the kerb), and the building line where façades, walls and fences stand.

    ``sign`` is +1 for the right side, -1 for the left; ``x(offset)`` turns an offset beyond the
    kerb into a road x.
    """

    def __init__(
        self, sign: int, kerb_x: float, sidewalk_m: float, verge_m: float, style: str, rng: np.random.Generator
    ) -> None:
        self.sign, self.kerb_x, self.style = sign, kerb_x, style
        self.tree_offset_m: float | None  # where street trees stand; None: no room for them
        bands: list[GroundBand]
        if verge_m > 0 and style != "urban" and rng.random() < 0.6:
            # a grass verge between the road and the sidewalk
            bands = [GroundBand(verge_m, "terrain"), GroundBand(verge_m + sidewalk_m, "sidewalk")]
            self.tree_offset_m = verge_m * 0.5
            self.lamp_offset_m = verge_m * 0.5
        elif verge_m > 0:
            bands = [GroundBand(sidewalk_m, "sidewalk"), GroundBand(sidewalk_m + verge_m, "terrain")]
            self.tree_offset_m = sidewalk_m + verge_m * 0.5
            self.lamp_offset_m = 0.45
        else:
            bands = [GroundBand(sidewalk_m, "sidewalk")]
            self.tree_offset_m = 0.9 if sidewalk_m > 2.6 else None
            self.lamp_offset_m = 0.45
        self.bands = bands
        inner = 0.0
        for band in bands:
            if band.surface == "sidewalk":
                self.sidewalk_span = (inner, band.outer_m)  # offsets where pedestrians walk
            inner = band.outer_m
        self.beyond_surface = "sidewalk" if style == "urban" else "terrain"  # outside the last band
        self.width_m = bands[-1].outer_m
        if style == "urban":
            self.building_line_m = self.width_m + float(rng.uniform(0.0, 1.5))
        else:
            self.building_line_m = self.width_m + float(rng.uniform(1.0, 6.0))

    def x(self, offset_m: float) -> float:
        """Road x of a point ``offset_m`` metres beyond the kerb."""
        return self.kerb_x + self.sign * offset_m


class RoadLayout:
    """Lanes ``lane_width`` wide: forward lanes at x in [0, lanes_right_x] (right-hand traffic),
    oncoming lanes at [lanes_left_x, 0]; kerbs at ``kerb_left_x`` and ``kerb_right_x``; the
    ego camera drives at ``ego_x``. Dashes repeat every ``dash_period`` metres of road."""

    def __init__(self, params: SceneParams, rng: np.random.Generator) -> None:
        lane_width = params.lane_width_m
        self.lane_width = lane_width
        self.lanes_forward, self.lanes_backward = params.lanes_forward, params.lanes_backward
        self.lanes_right_x = self.lanes_forward * lane_width  # outer forward lane boundary
        self.lanes_left_x = -self.lanes_backward * lane_width
        self.parking_right_m = PARKING_STRIP_M if params.parking_right else 0.0
        self.parking_left_m = PARKING_STRIP_M if params.parking_left else 0.0
        self.kerb_right_x = self.lanes_right_x + (self.parking_right_m or ROAD_SHOULDER_M)
        self.kerb_left_x = self.lanes_left_x - (self.parking_left_m or ROAD_SHOULDER_M)
        self.ego_x = (params.ego_lane + 0.5) * lane_width + params.lateral_offset_m
        self.right = RoadSide(
            +1, self.kerb_right_x, params.sidewalk_right_m, params.verge_right_m, params.style_right, rng
        )
        self.left = RoadSide(-1, self.kerb_left_x, params.sidewalk_left_m, params.verge_left_m, params.style_left, rng)
        # marking type of lane boundary j (at x = j * lane_width), j = -lanes_backward..lanes_forward
        types = []
        for j in range(-self.lanes_backward, self.lanes_forward + 1):
            if j == 0 and self.lanes_backward > 0:
                line = _CENTRE_LINE_TYPES[params.centre_line]
                if params.yellow_centre:
                    line = _YELLOW_VARIANT[line]
            elif j in (-self.lanes_backward, self.lanes_forward):
                line = LINE_SOLID_WHITE  # the road's outer edges
            else:
                line = LINE_DASHED_WHITE
            types.append(line)
        self.line_types: npt.NDArray[np.int8] = np.array(types, np.int8)
        self.dash_period = float(rng.uniform(9.0, 13.0))
        self.dash_length = float(rng.uniform(2.5, 4.0))
        self.dash_phase = float(rng.uniform(0, 20))

    def side(self, sign: int) -> RoadSide:
        """The right side for ``sign > 0``, else the left."""
        return self.right if sign > 0 else self.left
