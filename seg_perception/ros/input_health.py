"""Why a camera input is silent: the verdict behind a camera's /diagnostics status.

Pure logic over plain values (no rclpy), so every rule is tested without a graph. The node
gathers, once a second, what it knows of each camera: the publishers on its topics and their
QoS, the QoS it subscribed with, incompatible-QoS events, frames received, frames the
middleware lost (``message_lost`` events and gaps in the publishers' sequence numbers) and
frames that arrived but could not be decoded. :func:`diagnose` names the likely cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from seg_perception.ros.qos import BEST_EFFORT, RELIABLE, Offer, describe_offers

OK_LEVEL, WARN_LEVEL = "ok", "warn"
# Receive buffer the node asks Fast DDS for (config/fastdds_large_images.xml); the kernel caps
# it at net.core.rmem_max. Below this, bursts of UDP fragments of one large frame overflow it.
WANTED_RECEIVE_BUFFER = 32 * 1024 * 1024


@dataclass(frozen=True)
class TopicState:
    """One input topic of a camera, as the node last saw it."""

    topic: str
    reliability: str  # of our subscription
    offers: tuple[Offer, ...]
    incompatible_policy: str = ""  # last policy an incompatible-QoS event named ("" = none)
    incompatible_type: bool = False


@dataclass(frozen=True)
class Window:
    """Counts over the last ``seconds`` (the input timeout)."""

    seconds: float
    received: int = 0
    lost: int = 0
    bad_input: int = 0
    processed: int = 0


@dataclass(frozen=True)
class InputState:
    """What :func:`diagnose` needs about one camera."""

    subscribed: bool
    topics: tuple[TopicState, ...]
    window: Window
    subscribed_s: float  # since the inputs were (re)subscribed
    silent_s: float  # since the last frame arrived (or since subscribing, if none did)
    timeout_s: float  # silence or loss longer than this is worth a warning
    last_bad_input: str = ""  # the decoder's message for the newest bad frame
    rmem_max: int | None = None  # net.core.rmem_max, where readable


@dataclass(frozen=True)
class Verdict:
    level: str  # OK_LEVEL | WARN_LEVEL
    cause: str  # short key: a change of cause is logged once
    message: str


def diagnose(state: InputState) -> Verdict:
    """The likely reason a camera delivers no (or too few) frames, most specific first."""
    if not state.subscribed:
        return Verdict(OK_LEVEL, "unsubscribed", "input not subscribed (no output has a subscriber)")
    for topic in state.topics:
        if topic.incompatible_type:
            return Verdict(
                WARN_LEVEL,
                "incompatible_type",
                f"no frames from {topic.topic}: a publisher offers another message type",
            )
        if topic.incompatible_policy and state.window.received == 0:
            return Verdict(WARN_LEVEL, "incompatible_qos", _incompatible(topic))
    offers = [o for t in state.topics for o in t.offers]
    if not offers:
        topics = ", ".join(t.topic for t in state.topics)
        return Verdict(OK_LEVEL, "no_publisher", f"waiting for a publisher on {topics}")
    window = state.window
    if window.bad_input and not window.processed:
        return Verdict(
            WARN_LEVEL,
            "bad_input",
            f"frames arrive but cannot be decoded ({window.bad_input} in {window.seconds:.0f} s): "
            f"{state.last_bad_input}",
        )
    waited = min(state.subscribed_s, state.silent_s)
    if state.silent_s >= state.timeout_s and state.subscribed_s >= state.timeout_s:
        if window.lost:
            return Verdict(
                WARN_LEVEL,
                "lost_in_transport",
                f"no frame for {waited:.0f} s although {describe_offers(offers)}: {window.lost} frames "
                f"lost in transport; {_loss_hint(state, offers)}",
            )
        return Verdict(
            WARN_LEVEL,
            "silent",
            f"no frame for {waited:.0f} s although {describe_offers(offers)} (the camera may have stopped publishing)",
        )
    if window.lost and window.lost >= window.received:
        share = window.lost / (window.lost + window.received)
        return Verdict(
            WARN_LEVEL,
            "lost_in_transport",
            f"{window.lost} of {window.lost + window.received} frames ({share:.0%}) lost in transport "
            f"in {window.seconds:.0f} s; {_loss_hint(state, offers)}",
        )
    return Verdict(OK_LEVEL, "ok", "ok")


def _incompatible(topic: TopicState) -> str:
    policy = topic.incompatible_policy
    hint = ""
    if policy.upper().startswith("RELIABILITY") and topic.reliability == RELIABLE:
        hint = "; set input_reliability: auto (or best_effort) to match a best-effort camera"
    return (
        f"no frames from {topic.topic}: incompatible QoS ({policy}); subscribed {topic.reliability}, "
        f"{describe_offers(topic.offers)}{hint}"
    )


def _loss_hint(state: InputState, offers: list[Offer]) -> str:
    """What to change, given who is best effort and how large the kernel lets buffers be."""
    if not any(t.reliability == BEST_EFFORT for t in state.topics):
        return "the subscription's queue overflowed or the network dropped samples (frames_lost on /diagnostics)"
    hint = "large frames received best effort are lost whole when one UDP fragment is: "
    if all(o.reliability == RELIABLE for o in offers):
        return hint + "the camera offers reliable, so set input_reliability: auto (or reliable)"
    hint += "make the camera publish reliable"
    if state.rmem_max is not None and state.rmem_max < WANTED_RECEIVE_BUFFER:
        hint += (
            f", or raise net.core.rmem_max (now {state.rmem_max} bytes) to at least "
            f"{WANTED_RECEIVE_BUFFER} (sysctl -w net.core.rmem_max={WANTED_RECEIVE_BUFFER})"
        )
    return hint + ", or give the camera's process a larger shared-memory segment (README, Behind any camera)"
