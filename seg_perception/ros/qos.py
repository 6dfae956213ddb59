"""QoS: profiles from the plain strings of the node configuration, and the camera-input
reliability that matches the publishers of a topic.

``input_reliability: auto`` follows the camera the way rosbag2's recorder and image_pipeline
do: a best-effort subscription matches every publisher, so it is the choice while no publisher
is known or when any publisher is best effort; once every publisher offers reliable, the
subscription becomes reliable too. A reliable reader gets lost UDP fragments of a large frame
re-sent, where a best-effort reader loses the whole frame with one fragment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

RELIABLE, BEST_EFFORT, AUTO = "reliable", "best_effort", "auto"
_RELIABILITY = {RELIABLE: ReliabilityPolicy.RELIABLE, BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth``, volatile. ``best_effort`` + small depth = the sensor-data profile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


@dataclass(frozen=True)
class Offer:
    """What one publisher of a topic offers: reliability, durability and history depth."""

    node: str
    reliability: str  # reliable | best_effort | other names as rmw reports them
    durability: str
    depth: int  # 0 = unknown

    def __str__(self) -> str:
        # DDS discovery does not carry the history depth (rmw reports 0): shown only when known
        depth = f", depth {self.depth}" if self.depth > 0 else ""
        return f"{self.node or '?'} ({self.reliability}, {self.durability}{depth})"


def offers_of(endpoints: Iterable[TopicEndpointInfo]) -> tuple[Offer, ...]:
    """Offers from ``Node.get_publishers_info_by_topic``."""
    offers = []
    for info in endpoints:
        qos = info.qos_profile
        namespace = info.node_namespace.rstrip("/")
        offers.append(
            Offer(
                node=f"{namespace}/{info.node_name}",
                reliability=_policy_name(qos.reliability),
                durability=_policy_name(qos.durability),
                depth=int(qos.depth),
            )
        )
    return tuple(offers)


def matching_reliability(offers: Sequence[Offer]) -> str:
    """``reliable`` when every publisher offers reliable; ``best_effort`` otherwise, also while
    there is no publisher (a best-effort subscription matches any publisher)."""
    if offers and all(o.reliability == RELIABLE for o in offers):
        return RELIABLE
    return BEST_EFFORT


def describe_offers(offers: Sequence[Offer]) -> str:
    """``"2 publishers: /cam (reliable, volatile, depth 10), ..."`` for logs and /diagnostics."""
    if not offers:
        return "no publisher"
    noun = "publisher" if len(offers) == 1 else "publishers"
    return f"{len(offers)} {noun}: " + ", ".join(str(o) for o in offers)


def _policy_name(policy: object) -> str:
    name = getattr(policy, "name", str(policy)).lower()
    return name
