"""What a node keeps per camera and per frame: the camera's channel (inputs, outputs, latency,
the input's last verdict) and a decoded frame with the header of its message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rclpy.publisher import Publisher
from std_msgs.msg import Header

from seg_perception.io.image import DecodedImage
from seg_perception.metrics.latency import RollingStats
from seg_perception.ros.camera_input import CameraInput
from seg_perception.ros.input_health import Verdict


@dataclass(frozen=True)
class InputFrame:
    """A decoded frame with the header of the message it came from."""

    camera: str
    header: Header
    image: DecodedImage
    received_ns: int  # when the message reached this process, ROS clock (ns)


class OutputGroup(Protocol):
    """The publishers of one camera's results (see outputs.py)."""

    @property
    def publishers(self) -> list[Publisher[Any]]: ...


@dataclass
class CameraChannel:
    """One camera: its inputs, its output group, latency stats and the input's last verdict."""

    name: str
    prefix: str  # "" or "<camera>/": prepended to every input and output topic
    input: CameraInput
    outputs: Any  # the concrete node's OutputGroup
    stats: RollingStats = field(default_factory=RollingStats)
    verdict: Verdict | None = None

    @property
    def subscribed(self) -> bool:
        return self.input.subscribed

    def listeners(self) -> int:
        """Subscribers over all of this camera's outputs."""
        return sum(pub.get_subscription_count() for pub in self.outputs.publishers)
