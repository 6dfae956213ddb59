"""The input side of one camera: its subscriptions, with QoS that follows its publishers, and
what the transport tells us about them.

Each input topic (the raw image, and the compressed image where configured) is subscribed raw
(serialized CDR: a frame that newest-frame-wins will drop costs one memcpy, only the frame the
worker takes is deserialized). With ``input_reliability: auto`` the subscription's reliability
follows the publishers (:func:`~.qos.matching_reliability`), re-checked on every
:meth:`CameraInput.refresh` and re-subscribed, with one log line, when it changes. Frames the
middleware lost are counted from ``message_lost`` events and from gaps in the publishers'
sequence numbers (where rclpy passes message info), incompatible QoS and types from their
events; :meth:`CameraInput.state` hands all of it to :func:`~.input_health.diagnose`.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rclpy.node import Node
from rclpy.qos import qos_policy_name_from_kind
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.config.records import NodeIOConfig
from seg_perception.io.bags import COMPRESSED, IMAGE
from seg_perception.ros.input_health import InputState, TopicState, Window
from seg_perception.ros.qos import AUTO, Offer, describe_offers, matching_reliability, offers_of, qos_profile

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

# rclpy passes (message, MessageInfo) to two-argument callbacks since Iron; Humble never does.
MESSAGE_INFO = hasattr(Subscription, "CallbackType")
_EVENT_KWARGS = set(inspect.signature(SubscriptionEventCallbacks).parameters)
HISTORY_S = 30.0  # counter samples kept for the diagnosis window


@dataclass
class InputTopic:
    """One subscribed topic of a camera and what we know of its publishers."""

    name: str  # relative, as configured (prefix included)
    msgtype: str  # IMAGE | COMPRESSED
    msg_class: type
    subscription: Subscription[Any] | None = None
    reliability: str = ""  # of the current subscription
    offers: tuple[Offer, ...] = ()
    lost_events: int = 0  # message_lost: samples the middleware gave up on
    sequence_gaps: int = 0  # publication sequence numbers that never arrived
    incompatible_policy: str = ""
    incompatible_type: bool = False
    _last_sequence: dict[Any, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        # Both count a best-effort sample lost in fragments (the gap shows once the next one
        # arrives): the larger is the better estimate, never their sum.
        return max(self.lost_events, self.sequence_gaps)

    def note_sequence(self, info: dict[str, Any]) -> None:
        sequence = info.get("publication_sequence_number")
        if not sequence:  # None or 0: this rmw does not report them
            return
        gid = info.get("publisher_gid")
        if gid is None and len(self.offers) > 1:
            return  # sequence numbers of several publishers interleave; no gid to tell them apart
        key = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else repr(gid)
        last = self._last_sequence.get(key)
        if last is not None and sequence > last + 1:
            self.sequence_gaps += sequence - last - 1
        self._last_sequence[key] = sequence


class CameraInput:
    """Subscriptions of one camera (topics under ``prefix``), handing raw frames to ``on_frame``."""

    def __init__(
        self, node: Node, camera: str, prefix: str, io: NodeIOConfig, on_frame: Callable[[str, str, bytes], None]
    ) -> None:
        self.node, self.camera, self.io, self.on_frame = node, camera, io, on_frame
        self.topics = [InputTopic(prefix + io.image_topic, IMAGE, Image)]
        if io.compressed_topic:
            self.topics.append(InputTopic(prefix + io.compressed_topic, COMPRESSED, CompressedImage))
        self.subscribe_events = 0  # how often the inputs were (re)subscribed
        self.last_bad_input = ""
        self._subscribed_at = 0.0
        self._last_frame_at = 0.0
        self._history: deque[tuple[float, int, int, int, int]] = deque()

    # -- subscriptions -------------------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        return any(t.subscription is not None for t in self.topics)

    @property
    def image_topic(self) -> str:
        return self.resolved(self.topics[0])

    def resolved(self, topic: InputTopic) -> str:
        if topic.subscription is not None:
            return topic.subscription.topic_name
        return self.node.resolve_topic_name(topic.name)

    def subscribe(self) -> None:
        if self.subscribed:
            return
        now = time.monotonic()
        self._subscribed_at = self._last_frame_at = now
        self._history.clear()
        for topic in self.topics:
            topic.offers = self._look_up_offers(topic)
            self._subscribe_topic(topic, self._wanted_reliability(topic))
        self.subscribe_events += 1

    def unsubscribe(self) -> None:
        for topic in self.topics:
            if topic.subscription is not None:
                self.node.destroy_subscription(topic.subscription)
                topic.subscription = None

    def _look_up_offers(self, topic: InputTopic) -> tuple[Offer, ...]:
        return offers_of(self.node.get_publishers_info_by_topic(self.resolved(topic)))

    def _wanted_reliability(self, topic: InputTopic) -> str:
        if self.io.input_reliability == AUTO:
            return matching_reliability(topic.offers)
        return self.io.input_reliability

    def _subscribe_topic(self, topic: InputTopic, reliability: str) -> None:
        if topic.subscription is not None:
            self.node.destroy_subscription(topic.subscription)
        # A two-argument callback gets message info (sequence numbers) where rclpy passes it.
        callback: Callable[..., None] = (
            partial(self._on_message_with_info, topic) if MESSAGE_INFO else partial(self._on_message, topic)
        )
        events: dict[str, Any] = {
            "incompatible_qos": partial(self._on_incompatible_qos, topic),
            "message_lost": partial(self._on_message_lost, topic),
            "incompatible_type": partial(self._on_incompatible_type, topic),
        }
        topic.subscription = self.node.create_subscription(
            topic.msg_class,
            topic.name,
            callback,
            qos_profile(reliability, self.io.input_depth),
            raw=True,
            event_callbacks=SubscriptionEventCallbacks(**{k: v for k, v in events.items() if k in _EVENT_KWARGS}),
        )
        topic.reliability = reliability
        topic.incompatible_policy, topic.incompatible_type = "", False
        self.node.get_logger().info(
            f"input {topic.subscription.topic_name}: {describe_offers(topic.offers)}; subscribed {reliability}"
            + (" (input_reliability: auto)" if self.io.input_reliability == AUTO else "")
        )

    def refresh(self, buffer_counts: tuple[int, int, int]) -> None:
        """Look at the publishers again (re-subscribe where ``auto`` wants another reliability)
        and sample the counters for the diagnosis window. ``buffer_counts``: this camera's
        (received, bad_input, processed) totals from the frame buffer."""
        if not self.subscribed:
            return
        for topic in self.topics:
            topic.offers = self._look_up_offers(topic)
            wanted = self._wanted_reliability(topic)
            if wanted != topic.reliability:
                self._subscribe_topic(topic, wanted)
        now = time.monotonic()
        received, bad_input, processed = buffer_counts
        self._history.append((now, received, self.lost(), bad_input, processed))
        while self._history and now - self._history[0][0] > HISTORY_S:
            self._history.popleft()

    # -- callbacks (executor thread) --------------------------------------------------------
    def _on_message(self, topic: InputTopic, raw: bytes) -> None:
        self._last_frame_at = time.monotonic()
        self.on_frame(self.camera, topic.msgtype, raw)

    def _on_message_with_info(self, topic: InputTopic, raw: bytes, info: dict[str, Any]) -> None:
        topic.note_sequence(info)
        self._on_message(topic, raw)

    def _on_incompatible_qos(self, topic: InputTopic, event: Any) -> None:
        topic.incompatible_policy = qos_policy_name_from_kind(event.last_policy_kind)

    def _on_message_lost(self, topic: InputTopic, event: Any) -> None:
        topic.lost_events = max(topic.lost_events, int(event.total_count))

    def _on_incompatible_type(self, topic: InputTopic, event: Any) -> None:
        topic.incompatible_type = True

    # -- health -------------------------------------------------------------------------------
    def lost(self) -> int:
        return sum(t.lost for t in self.topics)

    def state(self, timeout_s: float, rmem_max: int | None) -> InputState:
        """What :func:`~.input_health.diagnose` needs, counts over the last ``timeout_s``."""
        now = time.monotonic()
        window = Window(seconds=timeout_s)
        if len(self._history) >= 2:
            newest = self._history[-1]
            oldest = next((s for s in self._history if newest[0] - s[0] <= timeout_s), newest)
            received, lost, bad, processed = (a - b for a, b in zip(newest[1:], oldest[1:]))
            window = Window(max(newest[0] - oldest[0], 1e-3), received, lost, bad, processed)
        topics = tuple(
            TopicState(self.resolved(t), t.reliability, t.offers, t.incompatible_policy, t.incompatible_type)
            for t in self.topics
        )
        return InputState(
            subscribed=self.subscribed,
            topics=topics,
            window=window,
            subscribed_s=now - self._subscribed_at if self.subscribed else 0.0,
            silent_s=now - self._last_frame_at if self.subscribed else 0.0,
            timeout_s=timeout_s,
            last_bad_input=self.last_bad_input,
            rmem_max=rmem_max,
        )
