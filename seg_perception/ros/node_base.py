"""What every segmentation node shares: inputs, newest-frame-wins, the worker, diagnostics.

A concrete node supplies the core it runs (``setup_core``) and what it does with a batch of
decoded frames (``process``). The subscription callbacks only store the newest message; a
worker thread decodes, runs the core and publishes, so a slow model never backs up DDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..config import InstanceModelConfig, NodeIOConfig, node_defaults
from ..errors import ImageError, SegPerceptionError
from ..frame_buffer import LatestFrameBuffer
from ..image_conversion import DecodedImage, decode_compressed, decode_image
from ..inference.registry import resolve_device
from ..pipeline.semantic import SemanticSegmenter
from ..stats import RollingStats
from .diagnostics import OK, WARN, diagnostic_array
from .parameters import declare_from_defaults
from .qos import qos_profile

DEFAULT_CAMERA = ""
WARN_THROTTLE_S = 5.0


@dataclass(frozen=True)
class InputFrame:
    """A decoded frame with the header of the message it came from."""

    camera: str
    header: Header
    image: DecodedImage
    received_ns: int


class SegmentationNodeBase(Node):
    """Base for the semantic / instance / perception nodes (plain rclpy nodes)."""

    config_name = ""  # config/<config_name>.yaml
    core_description = ""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.params = declare_from_defaults(self, node_defaults(self.config_name))
        self.io = NodeIOConfig.from_params(self.params)
        self.setup_core(self.params)
        self.buffer = LatestFrameBuffer()
        self.stats = RollingStats()
        self.inference_errors = 0
        self.overlays_rendered = 0  # counted, so tests can prove overlays cost nothing unwatched
        self._out_qos = qos_profile(self.io.output_reliability, self.io.output_depth)
        self.setup_publishers()
        in_qos = qos_profile(self.io.input_reliability, self.io.input_depth)
        self.create_subscription(Image, self.io.image_topic, self._on_image, in_qos)
        if self.io.compressed_topic:
            self.create_subscription(CompressedImage, self.io.compressed_topic, self._on_compressed, in_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.io.diagnostics_period, self._publish_diagnostics)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"{node_name}-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"{self.core_description}; listening on {self.resolve_topic_name(self.io.image_topic)}")

    # -- hooks for concrete nodes -------------------------------------------------------
    def setup_core(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def setup_publishers(self) -> None:
        raise NotImplementedError

    def process(self, frames: Sequence[InputFrame]) -> None:
        """Run the core on a batch and publish; called on the worker thread."""
        raise NotImplementedError

    def diagnostic_values(self) -> dict[str, Any]:
        return {}

    # -- helpers for concrete nodes -----------------------------------------------------
    def count_overlay(self) -> None:
        self.overlays_rendered += 1

    def semantic_diagnostics(self, segmenter: SemanticSegmenter) -> dict[str, Any]:
        backend = segmenter.backend
        return {
            "model": segmenter.config.model,
            "backend": backend.name,
            "device": backend.device,
            "precision": backend.precision,
            "checkpoint": segmenter.config.checkpoint or "untrained",
        }

    def instance_diagnostics(self, config: InstanceModelConfig) -> dict[str, Any]:
        return {
            "instance_model": config.model,
            "instance_backend": "torch",
            "instance_device": resolve_device(config.device),
            "instance_checkpoint": config.checkpoint or "untrained",
        }

    def output_publisher(self, msg_type: type, topic: str):  # noqa: ANN201 - rclpy Publisher
        return self.create_publisher(msg_type, topic, self._out_qos)

    def published(self, frame: InputFrame) -> None:
        """Record that all outputs of ``frame`` went out (latency against ROS time)."""
        now_ns = self.get_clock().now().nanoseconds
        stamp = frame.header.stamp
        self.stats.add((now_ns - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e9)
        self.buffer.count(frame.camera, processed=1)

    # -- input side -----------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.buffer.put(DEFAULT_CAMERA, (decode_image, msg, time.monotonic_ns()))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.buffer.put(DEFAULT_CAMERA, (decode_compressed, msg, time.monotonic_ns()))

    def _decode(self, camera: str, item: tuple) -> InputFrame | None:
        decode, msg, received = item
        try:
            return InputFrame(camera, msg.header, decode(msg), received)
        except ImageError as err:
            self.buffer.count(camera, bad_input=1)
            self.get_logger().warning(
                f"dropping bad frame on {camera or 'camera'} ({err})", throttle_duration_sec=WARN_THROTTLE_S
            )
            return None

    # -- worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            taken = self.buffer.take(timeout=0.1)
            frames = [f for cam, item in sorted(taken.items()) if (f := self._decode(cam, item))]
            if not frames:
                continue
            try:
                self.process(frames)
            except SegPerceptionError as err:
                self._inference_failed(err)
            except Exception as err:  # noqa: BLE001 - keep serving; the error is logged and counted
                if self._stop.is_set():
                    return  # the context went away under us during shutdown
                self._inference_failed(err)

    def _inference_failed(self, err: Exception) -> None:
        self.inference_errors += 1
        self.get_logger().error(
            f"processing failed ({type(err).__name__}: {err})", throttle_duration_sec=WARN_THROTTLE_S
        )

    def close(self) -> None:
        """Stop and join the worker; call before destroy_node()/rclpy.shutdown()."""
        self._stop.set()
        self.buffer.close()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join()

    # -- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        counters = self.buffer.snapshot()
        total = {k: sum(getattr(c, k) for c in counters.values()) for k in ("received", "processed", "dropped", "bad_input")}
        latency = self.stats.percentiles_ms()
        values: dict[str, Any] = {
            "rate_hz": self.stats.rate_hz(),
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            "frames_received": total["received"],
            "frames_processed": total["processed"],
            "frames_dropped": total["dropped"],
            "bad_input": total["bad_input"],
            "inference_errors": self.inference_errors,
            "overlays_rendered": self.overlays_rendered,
            **self.diagnostic_values(),
        }
        degraded = total["bad_input"] or self.inference_errors
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(
            diagnostic_array(
                header,
                name=f"{self.get_fully_qualified_name()}: {self.config_name} segmentation",
                hardware_id=str(values.get("device", "")),
                level=WARN if degraded else OK,
                message="bad input or inference errors seen" if degraded else "ok",
                values=values,
            )
        )


def describe_semantic(node: Node, segmenter: SemanticSegmenter) -> str:
    """One log line about the semantic core; warns when it runs untrained weights."""
    cfg, backend = segmenter.config, segmenter.backend
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    return f"{cfg.model} on {backend.name}/{backend.device}/{backend.precision}, input {cfg.input_width}x{cfg.input_height}"


def describe_instance(node: Node, cfg: InstanceModelConfig) -> str:
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    return f"{cfg.model} on torch/{resolve_device(cfg.device)}/{cfg.precision}, input {cfg.input_width}x{cfg.input_height}"
