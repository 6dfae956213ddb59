"""Imaging conditions and the parameters of one scene (geometry and appearance), with their sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seg_perception.synthetic.randomness import choose

CONDITIONS = (
    "day",
    "dusk",
    "night",
    "fog",
    "rain",
    "noise",
    "motion_blur",
    "overexposed",
    "underexposed",
)
# Probabilities with which a condition is drawn when none is given: half of the frames are
# plain daylight, the rest spread over the degraded conditions.
CONDITION_PROBABILITIES = np.array([0.44, 0.07, 0.09, 0.07, 0.07, 0.07, 0.07, 0.06, 0.06])

ROADSIDE_STYLES = ("urban", "urban", "urban", "suburban", "green")  # urban three times as likely
# Chance that a side of the given style has a grass verge.
_VERGE_PROBABILITY = {"urban": 0.2, "suburban": 0.7, "green": 0.9}


def check_condition(condition: str | None) -> None:
    """ValueError unless ``condition`` is None (drawn) or one of :data:`CONDITIONS`."""
    if condition is not None and condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")


@dataclass(frozen=True)
class SceneParams:
    """Geometry and appearance of one scene (sampled per frame, or once per drive).

    Camera: ``pitch_deg > 0`` tilts the camera down (the horizon moves up), ``yaw_deg > 0``
    turns it right. Road: right-hand traffic; ``lanes_forward`` lanes go the camera's way
    right of the centre line, ``lanes_backward`` lanes come towards it; ``ego_lane`` counts
    forward lanes from the centre line. ``curvature_per_m > 0`` bends the road to the right.
    """

    camera_height_m: float
    pitch_deg: float
    hfov_deg: float
    condition: str
    yaw_deg: float = 0.0
    curvature_per_m: float = 0.0
    lane_width_m: float = 3.5
    lanes_forward: int = 2
    lanes_backward: int = 1
    ego_lane: int = 0
    lateral_offset_m: float = 0.0
    parking_left: bool = False
    parking_right: bool = True
    kerb_height_m: float = 0.14
    sidewalk_left_m: float = 3.0
    sidewalk_right_m: float = 3.0
    verge_left_m: float = 0.0
    verge_right_m: float = 0.0
    style_left: str = "urban"  # urban | suburban | green
    style_right: str = "urban"
    centre_line: str = "dashed"  # dashed | solid | double
    yellow_centre: bool = False
    speed_mps: float = 10.0
    traffic_density: float = 0.6
    pedestrian_density: float = 0.5
    sun_elevation_deg: float = 40.0
    sun_azimuth_deg: float = 30.0
    overcast: bool = False
    look_seed: int = 0

    @staticmethod
    def sample(rng: np.random.Generator, condition: str) -> SceneParams:
        """Draw a plausible urban/suburban scene (the draws happen in the order written here)."""
        lanes_forward = choose(rng, (1, 2, 2, 3))
        # three forward lanes come with at least one oncoming lane
        lanes_backward = choose(rng, (0, 1, 1, 2, 2)) if lanes_forward < 3 else choose(rng, (1, 2, 3))
        style_right = choose(rng, ROADSIDE_STYLES)
        style_left = style_right if rng.random() < 0.6 else choose(rng, ROADSIDE_STYLES)

        def sidewalk_width(style: str) -> float:
            return float(rng.uniform(2.0, 5.0) if style == "urban" else rng.uniform(1.4, 2.6))

        def verge_width(style: str) -> float:
            return float(rng.uniform(0.8, 3.0)) if rng.random() < _VERGE_PROBABILITY[style] else 0.0

        curved = rng.random() < 0.45
        return SceneParams(
            camera_height_m=float(rng.uniform(1.2, 1.8)),
            pitch_deg=float(rng.uniform(-3.0, 3.0)),
            hfov_deg=float(rng.uniform(60.0, 100.0)),
            condition=condition,
            yaw_deg=float(rng.uniform(-1.5, 1.5)),
            curvature_per_m=float(rng.uniform(-1 / 220, 1 / 220)) if curved else 0.0,
            lane_width_m=float(rng.uniform(3.0, 3.8)),
            lanes_forward=lanes_forward,
            lanes_backward=lanes_backward,
            ego_lane=int(rng.integers(0, lanes_forward)),
            lateral_offset_m=float(rng.uniform(-0.35, 0.35)),
            parking_left=bool(lanes_backward > 0 and rng.random() < 0.35),
            parking_right=bool(rng.random() < 0.5),
            kerb_height_m=float(rng.uniform(0.1, 0.18)),
            sidewalk_left_m=sidewalk_width(style_left),
            sidewalk_right_m=sidewalk_width(style_right),
            verge_left_m=verge_width(style_left),
            verge_right_m=verge_width(style_right),
            style_left=style_left,
            style_right=style_right,
            centre_line=choose(rng, ("dashed", "solid", "double")),
            yellow_centre=bool(rng.random() < 0.3),
            speed_mps=float(rng.uniform(5.0, 14.0)),
            traffic_density=float(rng.uniform(0.25, 1.0)),
            pedestrian_density=float(rng.uniform(0.15, 1.0)),
            sun_elevation_deg=float(rng.uniform(15.0, 65.0)),
            sun_azimuth_deg=float(rng.uniform(-180.0, 180.0)),
            overcast=bool(rng.random() < 0.3),
            look_seed=int(rng.integers(0, 2**31)),
        )
