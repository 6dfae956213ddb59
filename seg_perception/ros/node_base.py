"""What every segmentation node shares: cameras, newest-frame-wins, the worker, the lifecycle,
diagnostics.

A concrete node supplies the core it runs (``setup_core`` / ``release_core``), one output group
per camera (``make_outputs``) and what it does with a batch of decoded frames (``process``).
The subscription callbacks only store the newest message of their camera; a worker thread
takes the newest frame of every camera that has one, decodes, runs them through the core as
one batch and publishes each result under its own camera, so a slow model never backs up DDS.

Every node is an ``rclpy.lifecycle`` node; the state machine owns the resources:
configure = parameters, models, publishers, diagnostics; activate = subscriptions and the
worker; deactivate = stop both (models stay loaded); cleanup = free models and publishers.
With ``lifecycle: false`` (the default) the node has no lifecycle services and walks itself
through configure and activate in its constructor, so it behaves like a plain node and a
configuration error still ends start-up with one line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..config import InstanceModelConfig, NodeIOConfig, node_defaults
from ..errors import ConfigError, ImageError, SegPerceptionError
from ..frame_buffer import LatestFrameBuffer
from ..bags import COMPRESSED, IMAGE, decode_frame
from ..image_conversion import DecodedImage
from ..inference.onnx_export import cpu_threads, set_cpu_threads
from ..inference.registry import resolve_device
from ..pipeline.semantic import SemanticSegmenter
from ..stats import RollingStats
from .diagnostics import OK, WARN, diagnostic_status
from .parameters import declare_from_defaults
from .qos import qos_profile

DEFAULT_CAMERA = ""  # `cameras: []`: one camera, topics directly under the node's namespace
WARN_THROTTLE_S = 5.0
LAZY_POLL_S = 0.5  # how often a lazy node looks for subscribers of its outputs
TAKE_TIMEOUT_S = 0.1  # the worker wakes this often to notice a stop request


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
    def publishers(self) -> list[Publisher]: ...


@dataclass
class CameraChannel:
    """One camera: its input topics, its output group, its subscriptions and latency stats."""

    name: str
    prefix: str  # "" or "<camera>/": prepended to every input and output topic
    outputs: Any  # the concrete node's OutputGroup
    subscriptions: list[Subscription] = field(default_factory=list)
    stats: RollingStats = field(default_factory=RollingStats)
    subscribe_events: int = 0  # how often the inputs were (re)subscribed

    @property
    def subscribed(self) -> bool:
        return bool(self.subscriptions)

    def listeners(self) -> int:
        """Subscribers over all of this camera's outputs."""
        return sum(pub.get_subscription_count() for pub in self.outputs.publishers)


class SegmentationNodeBase(LifecycleNode):
    """Base for the semantic / instance / perception nodes."""

    config_name = ""  # config/<config_name>.yaml
    core_description = ""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        # LifecycleNode.__init__ is Node.__init__ + LifecycleNodeMixin.__init__; split here
        # because whether to offer the lifecycle services is itself a parameter.
        Node.__init__(self, node_name, **kwargs)
        self._param_error: ConfigError | None = None
        try:
            self.params = declare_from_defaults(self, node_defaults(self.config_name))
        except ConfigError as err:  # reported by configure, so a managed node stays up
            self.params, self._param_error = {}, err
        self.managed = self.params.get("lifecycle") is True
        LifecycleNodeMixin.__init__(self, enable_communication_interface=self.managed)
        self.channels: dict[str, CameraChannel] = {}
        self.buffer = LatestFrameBuffer()
        self.stats = RollingStats()
        self.transport_stats = RollingStats()
        self.processing_stats = RollingStats()
        self.inference_errors = 0
        self.overlays_rendered = 0  # counted, so tests can prove overlays cost nothing unwatched
        self.batches = 0
        self.batched_frames = 0
        self.largest_batch = 0
        self._publishers_made: list[Publisher] = []
        self._diag_pub: Publisher | None = None
        self._diag_timer: Timer | None = None
        self._lazy_timer: Timer | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._configured = self._active = self._finalized = False
        self._last_error: BaseException | None = None
        if self.managed:
            self.get_logger().info("managed node: waiting for configure and activate")
            return
        for step in (self.trigger_configure, self.trigger_activate):
            if step() != TransitionCallbackReturn.SUCCESS:
                raise self._last_error or SegPerceptionError(f"{step.__name__} failed")

    # -- hooks for concrete nodes -------------------------------------------------------
    def setup_core(self, params: dict[str, Any]) -> None:
        """Build the models from the parameters (configure); raise ConfigError on bad ones."""
        raise NotImplementedError

    def release_core(self) -> None:
        """Drop the models (cleanup); the node may be configured again later."""

    def make_outputs(self, prefix: str) -> OutputGroup:
        """The publishers of one camera, topics under ``prefix`` ("" or "<camera>/")."""
        raise NotImplementedError

    def process(self, frames: Sequence[InputFrame]) -> None:
        """Run the core on a batch and publish; called on the worker thread."""
        raise NotImplementedError

    def diagnostic_values(self) -> dict[str, Any]:
        return {}

    # -- helpers for concrete nodes -----------------------------------------------------
    def outputs_of(self, frame: InputFrame) -> Any:
        return self.channels[frame.camera].outputs

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

    def instance_diagnostics(self, config: InstanceModelConfig, segmenter: Any = None) -> dict[str, Any]:
        backend = getattr(getattr(segmenter, "backend", None), "name", "torch")
        return {
            "instance_model": config.model,
            "instance_backend": backend,
            "instance_device": resolve_device(config.device),
            "instance_checkpoint": config.checkpoint or "untrained",
        }

    def output_publisher(self, msg_type: type, topic: str) -> Publisher:
        pub = self.create_publisher(msg_type, topic, qos_profile(self.io.output_reliability, self.io.output_depth))
        self._publishers_made.append(pub)
        return pub

    def published(self, frame: InputFrame) -> None:
        """Record that all outputs of ``frame`` went out (latency against ROS time)."""
        now_ns = self.get_clock().now().nanoseconds
        stamp = frame.header.stamp
        latency = (now_ns - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e9
        self.stats.add(latency)
        self.channels[frame.camera].stats.add(latency)
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        self.transport_stats.add((frame.received_ns - stamp_ns) / 1e9)  # stamp -> in this process
        self.buffer.count(frame.camera, processed=1)

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._param_error is not None:
                raise self._param_error
            self.io = NodeIOConfig.from_params(self.params)
            if self.io.cpu_threads:
                set_cpu_threads(self.io.cpu_threads)
            self.setup_core(self.params)
            self._make_runtime()
        except Exception as err:  # noqa: BLE001 - a failed transition, the node stays up unconfigured
            self._last_error = err
            self._release()
            if self.managed:  # a plain node raises it from the constructor instead
                self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        self.get_logger().info(f"configured: {self.core_description}; cameras: {self._camera_names()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop = threading.Event()  # a fresh event per activation: the old worker has exited
        self.buffer.reopen()
        self._worker = threading.Thread(target=self._work, args=(self._stop,), name=f"{self.get_name()}-worker",
                                        daemon=True)
        self._worker.start()
        if self.io.lazy:
            self._lazy_timer = self.create_timer(LAZY_POLL_S, self._update_lazy_subscriptions)
            self._update_lazy_subscriptions()
        else:
            for channel in self.channels.values():
                self._subscribe(channel)
        self._active = True
        topics = [self.resolve_topic_name(c.prefix + self.io.image_topic) for c in self.channels.values()]
        self.get_logger().info(f"{self.core_description}; {'lazily ' if self.io.lazy else ''}listening on {topics}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        self._finalized = True
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # An exception escaped a transition: drop everything and go back to unconfigured.
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the worker and free everything; call before destroy_node()/rclpy.shutdown()."""
        if self._finalized:
            return
        # After Ctrl-C the context is already shut down and the state machine cannot publish
        # its transition event (the transition fails half-way): tear down directly then.
        if self.context.ok():
            try:
                self.trigger_shutdown()  # valid from unconfigured, inactive and active
            except Exception:  # noqa: BLE001 - e.g. mid-transition; torn down below
                pass
        if not self._finalized:
            self.on_shutdown(LifecycleState(state_id=0, label="unknown"))

    def _make_runtime(self) -> None:
        self.buffer = LatestFrameBuffer()
        self.stats = RollingStats()
        self.transport_stats = RollingStats()
        self.processing_stats = RollingStats()
        self.inference_errors = self.overlays_rendered = self.batches = self.batched_frames = self.largest_batch = 0
        self._in_qos = qos_profile(self.io.input_reliability, self.io.input_depth)
        for camera in self.io.cameras or (DEFAULT_CAMERA,):
            prefix = f"{camera}/" if camera else ""
            self.channels[camera] = CameraChannel(camera, prefix, self.make_outputs(prefix))
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.io.diagnostics_period, self._publish_diagnostics)

    def _stop_processing(self) -> None:
        """Unsubscribe and join the worker (deactivate); models and publishers stay."""
        if self._lazy_timer is not None:
            self.destroy_timer(self._lazy_timer)
            self._lazy_timer = None
        for channel in self.channels.values():
            self._unsubscribe(channel)
        self._stop.set()
        self.buffer.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None
        self._active = False

    def _release(self) -> None:
        """Free what configure made (cleanup, or a failed configure)."""
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in [*self._publishers_made, *([self._diag_pub] if self._diag_pub else [])]:
            self.destroy_publisher(pub)
        self._publishers_made, self._diag_pub = [], None
        self.channels = {}
        self.release_core()
        self._configured = False

    # -- input side -----------------------------------------------------------------------
    def _subscribe(self, channel: CameraChannel) -> None:
        if channel.subscribed:
            return
        # Raw (serialized) messages: a frame that newest-frame-wins will drop costs one memcpy on
        # the executor thread; only the frame the worker takes is deserialized (zero-copy).
        subs = [self.create_subscription(Image, channel.prefix + self.io.image_topic,
                                         partial(self._on_raw, channel.name, IMAGE), self._in_qos, raw=True)]
        if self.io.compressed_topic:
            subs.append(self.create_subscription(CompressedImage, channel.prefix + self.io.compressed_topic,
                                                 partial(self._on_raw, channel.name, COMPRESSED), self._in_qos,
                                                 raw=True))
        channel.subscriptions = subs
        channel.subscribe_events += 1

    def _unsubscribe(self, channel: CameraChannel) -> None:
        for sub in channel.subscriptions:
            self.destroy_subscription(sub)
        channel.subscriptions = []

    def _update_lazy_subscriptions(self) -> None:
        """Lazy mode: a camera is subscribed exactly while one of its outputs has a listener."""
        for channel in self.channels.values():
            wanted = channel.listeners() > 0
            if wanted and not channel.subscribed:
                self._subscribe(channel)
                self.get_logger().info(f"{channel.name or 'camera'}: outputs have subscribers, input subscribed")
            elif not wanted and channel.subscribed:
                self._unsubscribe(channel)
                self.get_logger().info(f"{channel.name or 'camera'}: no output subscribers, input unsubscribed")

    def _on_raw(self, camera: str, msgtype: str, raw: bytes) -> None:
        # Receive time on the ROS clock, comparable with the header stamp (transport latency).
        self.buffer.put(camera, (msgtype, raw, self.get_clock().now().nanoseconds))

    def _decode(self, camera: str, item: tuple) -> InputFrame | None:
        msgtype, raw, received = item
        try:
            msg, image = decode_frame(raw, msgtype)
            header = Header(stamp=Time(sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec),
                            frame_id=msg.header.frame_id)
            return InputFrame(camera, header, image, received)
        except ImageError as err:
            self.buffer.count(camera, bad_input=1)
            self.get_logger().warning(
                f"dropping bad frame on {camera or 'camera'} ({err})", throttle_duration_sec=WARN_THROTTLE_S
            )
            return None

    # -- worker -----------------------------------------------------------------------------
    def _work(self, stop: threading.Event) -> None:
        gather_s = self.io.batch_timeout_ms / 1000.0
        while not stop.is_set():
            # Only subscribed cameras are waited for: a lazily unsubscribed one sends nothing.
            expected = [name for name, channel in self.channels.items() if channel.subscribed]
            taken = self.buffer.take(TAKE_TIMEOUT_S, gather_s=gather_s, expected=expected, max_batch=self.io.max_batch)
            started = time.perf_counter()
            frames = [f for cam, item in sorted(taken.items()) if (f := self._decode(cam, item))]
            if not frames:
                continue
            try:
                self.process(frames)
                self.processing_stats.add(time.perf_counter() - started)  # decode + core + publish, per batch
                self.batches += 1
                self.batched_frames += len(frames)
                self.largest_batch = max(self.largest_batch, len(frames))
            except SegPerceptionError as err:
                self._inference_failed(err)
            except Exception as err:  # noqa: BLE001 - keep serving; the error is logged and counted
                if stop.is_set():
                    return  # the context went away under us during shutdown
                self._inference_failed(err)

    def _inference_failed(self, err: Exception) -> None:
        self.inference_errors += 1
        self.get_logger().error(
            f"processing failed ({type(err).__name__}: {err})", throttle_duration_sec=WARN_THROTTLE_S
        )

    # -- diagnostics ------------------------------------------------------------------------
    def _camera_names(self) -> list[str]:
        return [name or "(default)" for name in self.channels]

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        counters = self.buffer.snapshot()
        keys = ("received", "processed", "dropped", "bad_input")
        total = {k: sum(getattr(c, k) for c in counters.values()) for k in keys}
        latency = self.stats.percentiles_ms()
        transport = self.transport_stats.percentiles_ms()
        processing = self.processing_stats.percentiles_ms()
        fqn = self.get_fully_qualified_name()
        values: dict[str, Any] = {
            "state": "active" if self._active else "inactive",
            "rate_hz": self.stats.rate_hz(),
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            "latency_p99_ms": latency["p99"],
            # Of that: header stamp -> message in this process (camera driver, DDS, executor).
            "transport_p50_ms": transport["p50"],
            "transport_p99_ms": transport["p99"],
            # ... and the worker's time per batch (decode, pre-processing, models, outputs).
            "processing_p50_ms": processing["p50"],
            "processing_p99_ms": processing["p99"],
            "frames_received": total["received"],
            "frames_processed": total["processed"],
            "frames_dropped": total["dropped"],
            "bad_input": total["bad_input"],
            "inference_errors": self.inference_errors,
            "overlays_rendered": self.overlays_rendered,
            "cameras": len(self.channels),
            "inputs_subscribed": sum(c.subscribed for c in self.channels.values()),
            "batches": self.batches,
            "mean_batch_size": self.batched_frames / self.batches if self.batches else 0.0,
            "largest_batch": self.largest_batch,
            "cpu_threads": cpu_threads(),
            **self.diagnostic_values(),
        }
        degraded = total["bad_input"] or self.inference_errors
        # The node summary first: consumers that read one status per node read this one.
        statuses = [
            diagnostic_status(
                name=f"{fqn}: {self.config_name} segmentation",
                hardware_id=str(values.get("device", "")),
                level=WARN if degraded else OK,
                message="bad input or inference errors seen" if degraded else "ok",
                values=values,
            )
        ]
        for name, channel in self.channels.items():
            c = counters.get(name)
            lat = channel.stats.percentiles_ms()
            statuses.append(
                diagnostic_status(
                    name=f"{fqn}: camera {name or '(default)'}",
                    hardware_id=str(values.get("device", "")),
                    level=WARN if c and c.bad_input else OK,
                    message="bad input seen" if c and c.bad_input else "ok",
                    values={
                        "input_topic": self.resolve_topic_name(channel.prefix + self.io.image_topic),
                        "input_subscribed": channel.subscribed,
                        "input_subscribe_events": channel.subscribe_events,
                        "rate_hz": channel.stats.rate_hz(),
                        "latency_p50_ms": lat["p50"],
                        "latency_p95_ms": lat["p95"],
                        "latency_p99_ms": lat["p99"],
                        "frames_received": c.received if c else 0,
                        "frames_processed": c.processed if c else 0,
                        "frames_dropped": c.dropped if c else 0,
                        "bad_input": c.bad_input if c else 0,
                    },
                )
            )
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=statuses))


def describe_semantic(node: Node, segmenter: SemanticSegmenter) -> str:
    """One log line about the semantic core; warns when it runs untrained weights."""
    cfg, backend = segmenter.config, segmenter.backend
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    return f"{cfg.model} on {backend.name}/{backend.device}/{backend.precision}, input {cfg.input_width}x{cfg.input_height}"


def describe_instance(node: Node, cfg: InstanceModelConfig, segmenter: Any = None) -> str:
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    backend = getattr(getattr(segmenter, "backend", None), "name", "torch")
    return (f"{cfg.model} on {backend}/{resolve_device(cfg.device)}/{cfg.precision}, "
            f"input {cfg.input_width}x{cfg.input_height}")
