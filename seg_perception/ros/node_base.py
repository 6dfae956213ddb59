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

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.timer import Timer
from std_msgs.msg import Header

from seg_perception.config.records import NodeIOConfig, node_defaults
from seg_perception.errors import ConfigError, ImageError, SegPerceptionError
from seg_perception.inference.threads import set_cpu_threads
from seg_perception.io.bags import decode_frame
from seg_perception.metrics.latency import RollingStats
from seg_perception.ros.camera_input import CameraInput
from seg_perception.ros.channels import CameraChannel, InputFrame, OutputGroup
from seg_perception.ros.clocks import steady_clock
from seg_perception.ros.frame_buffer import LatestFrameBuffer
from seg_perception.ros.input_health import WARN_LEVEL, diagnose
from seg_perception.ros.node_diagnostics import node_statuses
from seg_perception.ros.parameters import declare_from_defaults
from seg_perception.ros.qos import qos_profile
from seg_perception.ros.transport import large_image_profile_active, receive_buffer_limit, receive_buffer_warning

DEFAULT_CAMERA = ""  # `cameras: []`: one camera, topics directly under the node's namespace
WARN_THROTTLE_S = 5.0
INPUT_POLL_S = 0.5  # how often the node looks at publishers (QoS, health) and, if lazy, listeners
TAKE_TIMEOUT_S = 0.1  # the worker wakes this often to notice a stop request


class SegmentationNodeBase(LifecycleNode):
    """Base for the semantic / instance / perception nodes."""

    config_name = ""  # config/<config_name>.yaml
    default_name = ""  # the node's name unless remapped (__node:=)
    core_description = ""

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        node_name = node_name or self.default_name
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
        self._publishers_made: list[Publisher[Any]] = []
        self._diag_pub: Publisher[Any] | None = None
        self._diag_timer: Timer | None = None
        self._input_timer: Timer | None = None
        self._steady = steady_clock()  # timers that run without /clock
        self.rmem_max: int | None = None
        self._own_profile = False
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._configured = self._finalized = False
        self.active = False
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

    def publish_results(self, frames: Sequence[InputFrame], results: Sequence[Any], outputs: Sequence[Any]) -> None:
        """Publish each frame's result with its camera's outputs and record its latency."""
        for frame, result, out in zip(frames, results, outputs):
            out.publish(frame, result)
            self.published(frame)

    def log_event(self, level: str, message: str) -> None:
        """``notify`` of the core's background work (engine builds): to the node's log, any thread."""
        getattr(self.get_logger(), level)(message)

    def count_overlay(self) -> None:
        self.overlays_rendered += 1

    def output_publisher(self, msg_type: type, topic: str) -> Publisher[Any]:
        pub: Publisher[Any] = self.create_publisher(
            msg_type, topic, qos_profile(self.io.output_reliability, self.io.output_depth)
        )
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
    def _LifecycleNodeMixin__change_state(self, transition_id: int) -> TransitionCallbackReturn:  # noqa: N802
        """The mixin's own transition step, guarded. Jazzy's rclpy (7.x) lets a change_state
        request for a transition the current state does not have raise out of the service
        callback, which ends the node; Kilted's logs it and answers success=False. Same answer
        here, on every distribution (the name is the mixin's private method, as mangled)."""
        change = LifecycleNodeMixin._LifecycleNodeMixin__change_state  # type: ignore[attr-defined]
        try:
            result: TransitionCallbackReturn = change(self, transition_id)
            return result
        except _rclpy.RCLError as err:
            state = self._state_machine.current_state[1]
            self.get_logger().error(f"lifecycle transition {transition_id} refused (current state {state!r}): {err}")
            return TransitionCallbackReturn.ERROR

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._param_error is not None:
                raise self._param_error
            self.io = NodeIOConfig.from_params(self.params)
            if self.io.cpu_threads:
                set_cpu_threads(self.io.cpu_threads)
            self.setup_core(self.params)
            self._make_runtime()
            self._check_transport()
        except Exception as err:
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
        self._worker = threading.Thread(
            target=self._work, args=(self._stop,), name=f"{self.get_name()}-worker", daemon=True
        )
        self._worker.start()
        if not self.io.lazy:  # lazy: _poll_inputs subscribes the cameras that have listeners
            for channel in self.channels.values():
                channel.input.subscribe()
        self._input_timer = self.create_timer(INPUT_POLL_S, self._poll_inputs, clock=self._steady)
        self._poll_inputs()  # a verdict for every camera from the first /diagnostics on
        self.active = True
        topics = [c.input.image_topic for c in self.channels.values()]
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
            # valid from unconfigured, inactive and active; mid-transition it raises: torn down below
            with contextlib.suppress(Exception):
                self.trigger_shutdown()
        if not self._finalized:
            self.on_shutdown(LifecycleState(state_id=0, label="unknown"))

    def _make_runtime(self) -> None:
        self.buffer = LatestFrameBuffer()
        self.stats = RollingStats()
        self.transport_stats = RollingStats()
        self.processing_stats = RollingStats()
        self.inference_errors = self.overlays_rendered = self.batches = self.batched_frames = self.largest_batch = 0
        for camera in self.io.cameras or (DEFAULT_CAMERA,):
            prefix = f"{camera}/" if camera else ""
            camera_input = CameraInput(self, camera, prefix, self.io, self._on_raw)
            self.channels[camera] = CameraChannel(camera, prefix, camera_input, self.make_outputs(prefix))
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Steady clock: /diagnostics keeps coming (and says why) while a use_sim_time node has no /clock.
        self._diag_timer = self.create_timer(self.io.diagnostics_period, self._publish_diagnostics, clock=self._steady)

    def _check_transport(self) -> None:
        """Say once when the kernel caps the UDP receive buffer below what large frames need."""
        self.rmem_max = receive_buffer_limit()
        self._own_profile = large_image_profile_active()
        if self._own_profile:
            warning = receive_buffer_warning(self.rmem_max)
            if warning:
                self.get_logger().warning(warning)

    def _stop_processing(self) -> None:
        """Unsubscribe and join the worker (deactivate); models and publishers stay."""
        if self._input_timer is not None:
            self.destroy_timer(self._input_timer)
            self._input_timer = None
        for channel in self.channels.values():
            channel.input.unsubscribe()
        self._stop.set()
        self.buffer.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None
        self.active = False

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
    def _update_lazy_subscriptions(self) -> None:
        """Lazy mode: a camera is subscribed exactly while one of its outputs has a listener."""
        for channel in self.channels.values():
            wanted = channel.listeners() > 0
            if wanted and not channel.subscribed:
                channel.input.subscribe()
                self.get_logger().info(f"{channel.name or 'camera'}: outputs have subscribers, input subscribed")
            elif not wanted and channel.subscribed:
                channel.input.unsubscribe()
                self.get_logger().info(f"{channel.name or 'camera'}: no output subscribers, input unsubscribed")

    def _poll_inputs(self) -> None:
        """Every INPUT_POLL_S: lazy subscriptions, QoS that follows the publishers, input health."""
        if self.io.lazy:
            self._update_lazy_subscriptions()
        counters = self.buffer.snapshot()
        for name, channel in self.channels.items():
            c = counters.get(name)
            channel.input.refresh((c.received, c.bad_input, c.processed) if c else (0, 0, 0))
            # The receive-buffer advice holds only where our profile makes frames arrive by UDP.
            rmem_max = self.rmem_max if self._own_profile else None
            verdict = diagnose(channel.input.state(self.io.input_timeout, rmem_max))
            if channel.verdict is None or verdict.cause != channel.verdict.cause:
                # Once per change of cause: the log says why the input is silent, and when it recovers.
                if verdict.level == WARN_LEVEL:
                    self.get_logger().warning(f"{channel.name or 'camera'}: {verdict.message}")
                elif channel.verdict is not None and channel.verdict.level == WARN_LEVEL:
                    self.get_logger().info(f"{channel.name or 'camera'}: input ok again ({verdict.message})")
            channel.verdict = verdict

    def _on_raw(self, camera: str, msgtype: str, raw: bytes) -> None:
        # Receive time on the ROS clock, comparable with the header stamp (transport latency).
        self.buffer.put(camera, (msgtype, raw, self.get_clock().now().nanoseconds))

    def _decode(self, camera: str, item: tuple[str, bytes, int]) -> InputFrame | None:
        msgtype, raw, received = item
        try:
            msg, image = decode_frame(raw, msgtype)
            header = Header(
                stamp=Time(sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec), frame_id=msg.header.frame_id
            )
            return InputFrame(camera, header, image, received)
        except ImageError as err:
            self.buffer.count(camera, bad_input=1)
            channel = self.channels.get(camera)
            if channel is not None:
                channel.input.last_bad_input = str(err)
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
            except Exception as err:
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
        stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=stamp), status=node_statuses(self)))
