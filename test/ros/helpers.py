"""What the ROS graph tests share: test frames, publishing until an output arrives, reading
/diagnostics, and lifecycle service clients. The graph itself (node processes, the client
node) is :mod:`seg_perception.ros.tools.harness`, shared with the benchmarks and the demo."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image

from seg_perception.ros.tools.harness import GraphClient, find_message, status_values
from seg_perception.synthetic.frames import generate_frame

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4, "yuv422_yuy2": 2, "bayer_rggb8": 1, "mono16": 2}


# Untrained Mask R-CNN scores every class near 1/9 and every mask pixel near 0.5: low thresholds
# give real detections with pixels, so comparisons with the offline core are not between empty maps.
UNTRAINED_INSTANCE = {
    "checkpoint": "",
    "input_height": 128,
    "input_width": 256,
    "device": "cpu",
    "score_threshold": 0.05,
    "mask_threshold": 0.3,
    "max_instances": 12,
}


def road_scene(width: int, height: int, seed: int = 0) -> Image:
    """A generated road scene (rgb8): cars and people for the instance model to find."""
    frame = generate_frame(seed, 1, width, height, "day")
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.data = frame.image.tobytes()
    return msg


def decode_mono16(msg: Image) -> np.ndarray:
    assert msg.encoding == "mono16" and msg.is_bigendian == 0
    return np.frombuffer(bytes(msg.data), "<u2").reshape(msg.height, msg.step // 2)[:, : msg.width]


def make_image(encoding: str, width: int, height: int, step_pad: int = 0, seed: int = 0) -> Image:
    """A smooth random scene (not white noise, so a model's output varies), ``step_pad`` bytes
    of padding at the end of each row."""
    rng = np.random.default_rng(seed)
    channels = CHANNELS[encoding]
    row = width * channels  # bytes
    if encoding == "mono16":  # the full 16-bit range, little-endian, as an IR or 12/16-bit camera sends
        base16 = rng.integers(0, 65536, (height // 8 + 1, width // 8 + 1), np.uint16)
        wide = cv2.resize(base16, (width, height), interpolation=cv2.INTER_LINEAR).astype("<u2")
        pixels = wide.view(np.uint8).reshape(height, row)
    else:
        base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, channels), np.uint8)
        pixels = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, row)
    padded = np.zeros((height, row + step_pad), np.uint8)
    padded[:, :row] = pixels
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=row + step_pad)
    msg.data = padded.tobytes()
    return msg


def stamped(msg: Any, client: GraphClient, frame_id: str) -> Any:
    """``msg`` with a fresh header (now on the client's clock, ``frame_id``)."""
    msg.header.stamp = client.now_msg()
    msg.header.frame_id = frame_id
    return msg


def publish_until(client: GraphClient, pub: Any, msg: Any, topic: str, timeout: float = 30.0) -> Any:
    """Publish ``msg`` every 2 s until the output carrying its stamp arrives on ``topic`` (a frame
    sent before the node's subscription matched, or re-matched with another QoS, is not seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        if client.wait_for(lambda: find_message(client.messages(topic), msg.header.stamp) is not None, 2.0):
            return find_message(client.messages(topic), msg.header.stamp)
    return None


def newest_status(client: GraphClient, namespace: str, suffix: str = "") -> dict[str, str]:
    """The newest /diagnostics status of the node in ``namespace`` whose name ends with ``suffix``
    (``""``: the node summary, which comes first; ``": camera front"``: one camera)."""
    for msg in reversed(client.messages("/diagnostics")):
        for status in msg.status:
            if status.name.startswith(namespace + "/") and status.name.endswith(suffix):
                return status_values(status)
    return {}


def latest_diagnostics(client: GraphClient, namespace: str) -> dict[str, str]:
    """The node summary status of the node in ``namespace``."""
    return newest_status(client, namespace)


def camera_diagnostics(client: GraphClient, namespace: str, camera: str) -> dict[str, str]:
    return newest_status(client, namespace, f": camera {camera}")


def wait_status(client: GraphClient, namespace: str, suffix: str, predicate: Any, timeout: float) -> dict[str, str]:
    """Wait until the newest matching status satisfies ``predicate``; return it either way."""
    client.wait_for(lambda: predicate(newest_status(client, namespace, suffix)), timeout)
    return newest_status(client, namespace, suffix)


class Lifecycle:
    """Service clients for one managed node, on the GraphClient's (spinning) node."""

    def __init__(self, client: GraphClient, node_fqn: str) -> None:
        self.client = client
        self.change = client.node.create_client(ChangeState, f"{node_fqn}/change_state")
        self.get = client.node.create_client(GetState, f"{node_fqn}/get_state")

    def _call(self, cli: Any, request: Any) -> Any:
        assert cli.wait_for_service(timeout_sec=60), f"service {cli.srv_name} not available"
        future = cli.call_async(request)
        assert self.client.wait_for(future.done, 120), f"no reply from {cli.srv_name}"
        return future.result()

    def state(self) -> int:
        # A get_state request sent just as the service appears can lose its reply (the server's
        # reply writer not yet matched with our reader: seen once on Jazzy's Fast DDS, no reply
        # in 120 s). Asking is idempotent, so ask again every 5 s; transitions are asked once.
        assert self.get.wait_for_service(timeout_sec=60), f"service {self.get.srv_name} not available"
        for _ in range(24):
            future = self.get.call_async(GetState.Request())
            if self.client.wait_for(future.done, 5):
                return int(future.result().current_state.id)
            self.get.remove_pending_request(future)
        raise AssertionError(f"no reply from {self.get.srv_name} in 120 s")

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success
