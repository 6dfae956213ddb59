"""The pinhole camera in road coordinates, and the log-depth codes of rendered pixels.

Road coordinates (metres): x to the right of the road's reference (centre) line, y up, z
forward along the road relative to the camera. A curving road is modelled by bending: a point
at distance z is shifted sideways by ``0.5 * curvature * z**2`` before the camera transform,
so everything placed at a road x follows the curve.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from seg_perception.synthetic.params import SceneParams

NEAR_M = 0.15  # near clipping plane (camera z)
MAX_ENCODED_DEPTH_M = 2000.0  # depth codes cover log depth up to this distance
_LOG_MAX_DEPTH = math.log1p(MAX_ENCODED_DEPTH_M)
SKY_DEPTH_CODE = 255
# depth code -> metres; codes 0..254 are log-spaced, 255 is the sky (infinitely far)
DEPTH_LUT = np.expm1(np.arange(256, dtype=np.float64) * _LOG_MAX_DEPTH / 254.0).astype(np.float32)
DEPTH_LUT[SKY_DEPTH_CODE] = 1e5


def encode_depth(z: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Camera depths (m, any shape, float) -> uint8 log-depth codes 0..254 (see :data:`DEPTH_LUT`)."""
    codes: npt.NDArray[np.uint8] = np.clip(np.log1p(np.maximum(z, 0.0)) * (254.0 / _LOG_MAX_DEPTH), 0, 254).astype(
        np.uint8
    )
    return codes


class Camera:
    """Pinhole camera at lateral road x ``lateral_x`` and ``params.camera_height_m`` above the road.

    Image size ``width`` x ``height`` pixels, square pixels, principal point at the image centre;
    the horizontal field of view is ``params.hfov_deg``. ``pitch_deg > 0`` looks down,
    ``yaw_deg > 0`` looks right.
    """

    def __init__(
        self, params: SceneParams, width: int, height: int, lateral_x: float, pitch_deg: float, yaw_deg: float
    ) -> None:
        self.width, self.height = width, height
        self.fx = self.fy = (width / 2.0) / math.tan(math.radians(params.hfov_deg) / 2.0)
        self.cx, self.cy = (width - 1) / 2.0, (height - 1) / 2.0
        self.height_m = params.camera_height_m
        self.lateral_x = lateral_x
        self.curvature = params.curvature_per_m
        self.pitch = math.radians(pitch_deg)
        self.yaw = math.radians(yaw_deg)
        self.cos_pitch, self.sin_pitch = math.cos(self.pitch), math.sin(self.pitch)
        self.cos_yaw, self.sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        self.horizon_row = self.cy - self.fy * math.tan(self.pitch)  # image row of the horizon (float)
        self.position = np.array([lateral_x, self.height_m, 0.0])  # road coordinates, for back-face tests

    def to_camera(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(N, 3) road coordinates -> (N, 3) camera coordinates (x right, y down, z forward)."""
        z = points[:, 2]
        x_bent = points[:, 0] + 0.5 * self.curvature * z * z - self.lateral_x
        y_rel = points[:, 1] - self.height_m
        x_turned = self.cos_yaw * x_bent - self.sin_yaw * z
        z_turned = self.sin_yaw * x_bent + self.cos_yaw * z
        out = np.empty_like(points)
        out[:, 0] = x_turned
        out[:, 1] = -y_rel * self.cos_pitch - z_turned * self.sin_pitch
        out[:, 2] = -y_rel * self.sin_pitch + z_turned * self.cos_pitch
        return out

    def bend(self, z: float) -> float:
        """Lateral shift (m) of the road centre line at distance ``z`` (m)."""
        return 0.5 * self.curvature * z * z

    def ground_distance(self, x: float, z: float) -> float:
        """Horizontal distance (m) from the camera to the road point (x, z)."""
        return math.hypot(x + self.bend(z) - self.lateral_x, z)
