"""The input QoS choice and the silent-input verdict, rule by rule, without a graph."""

from __future__ import annotations

from dataclasses import replace

import pytest

from seg_perception.ros.input_health import InputState, TopicState, Window, diagnose
from seg_perception.ros.qos import Offer, describe_offers, matching_reliability
from seg_perception.ros.transport import receive_buffer_warning

RELIABLE_CAM = Offer("/camera_driver", "reliable", "volatile", 0)
BEST_EFFORT_CAM = Offer("/camera_driver", "best_effort", "volatile", 0)


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        ((), "best_effort"),  # nothing known yet: best effort matches any publisher
        ((RELIABLE_CAM,), "reliable"),
        ((BEST_EFFORT_CAM,), "best_effort"),
        ((RELIABLE_CAM, BEST_EFFORT_CAM), "best_effort"),  # reliable would not match the second one
        ((RELIABLE_CAM, RELIABLE_CAM), "reliable"),
    ],
)
def test_auto_reliability_matches_every_publisher(offers, expected) -> None:
    assert matching_reliability(offers) == expected


def test_offers_are_described_without_the_depth_dds_does_not_announce() -> None:
    assert describe_offers(()) == "no publisher"
    assert describe_offers((RELIABLE_CAM,)) == "1 publisher: /camera_driver (reliable, volatile)"
    assert describe_offers((RELIABLE_CAM, BEST_EFFORT_CAM)).startswith("2 publishers: ")


def state(**changes) -> InputState:
    base = InputState(
        subscribed=True,
        topics=(TopicState("/cam/image", "reliable", (RELIABLE_CAM,)),),
        window=Window(seconds=3.0, received=30, processed=20),
        subscribed_s=60.0,
        silent_s=0.05,
        timeout_s=3.0,
    )
    return replace(base, **changes)


def test_a_flowing_camera_is_ok() -> None:
    verdict = diagnose(state())
    assert (verdict.level, verdict.cause) == ("ok", "ok")


def test_an_unsubscribed_camera_is_not_a_fault() -> None:
    assert diagnose(state(subscribed=False, silent_s=100.0)).cause == "unsubscribed"


def test_no_publisher_is_reported_but_not_a_warning() -> None:
    verdict = diagnose(state(topics=(TopicState("/cam/image", "best_effort", ()),), silent_s=100.0))
    assert (verdict.level, verdict.cause) == ("ok", "no_publisher")
    assert "/cam/image" in verdict.message


def test_incompatible_reliability_names_the_policy_and_the_fix() -> None:
    topic = TopicState("/cam/image", "reliable", (BEST_EFFORT_CAM,), incompatible_policy="RELIABILITY")
    verdict = diagnose(state(topics=(topic,), window=Window(3.0), silent_s=1.0, subscribed_s=1.0))
    assert (verdict.level, verdict.cause) == ("warn", "incompatible_qos")
    assert "RELIABILITY" in verdict.message and "input_reliability: auto" in verdict.message
    # ... and once frames flow again (e.g. another, compatible publisher), it is no longer the cause.
    assert diagnose(state(topics=(topic,))).cause == "ok"


def test_silence_with_losses_blames_best_effort_fragments_and_the_receive_buffer() -> None:
    topic = TopicState("/cam/image", "best_effort", (BEST_EFFORT_CAM,))
    verdict = diagnose(state(topics=(topic,), window=Window(3.0, lost=29), silent_s=5.0, rmem_max=212992))
    assert (verdict.level, verdict.cause) == ("warn", "lost_in_transport")
    assert "publish reliable" in verdict.message and "net.core.rmem_max (now 212992 bytes)" in verdict.message
    big_buffer = diagnose(state(topics=(topic,), window=Window(3.0, lost=29), silent_s=5.0, rmem_max=1 << 30))
    assert "rmem_max" not in big_buffer.message


def test_losses_behind_a_reliable_camera_blame_our_best_effort_subscription() -> None:
    topic = TopicState("/cam/image", "best_effort", (RELIABLE_CAM,))
    verdict = diagnose(state(topics=(topic,), window=Window(3.0, lost=30), silent_s=5.0))
    assert "the camera offers reliable, so set input_reliability: auto" in verdict.message


def test_silence_without_losses_waits_for_the_timeout() -> None:
    assert diagnose(state(window=Window(3.0), silent_s=2.0)).cause == "ok"
    verdict = diagnose(state(window=Window(3.0), silent_s=3.5))
    assert (verdict.level, verdict.cause) == ("warn", "silent")
    assert "no frame for 4 s although 1 publisher" in verdict.message
    # right after (re)subscribing, silence is not yet a fault
    assert diagnose(state(window=Window(3.0), silent_s=2.0, subscribed_s=2.0)).cause == "ok"


def test_frames_far_below_the_publishers_rate_warn() -> None:
    verdict = diagnose(state(window=Window(3.0, received=4, lost=26, processed=4)))
    assert (verdict.level, verdict.cause) == ("warn", "lost_in_transport")
    assert "26 of 30 frames (87%)" in verdict.message
    assert diagnose(state(window=Window(3.0, received=28, lost=2, processed=20))).cause == "ok"


def test_undecodable_frames_name_the_decoders_message() -> None:
    verdict = diagnose(
        state(window=Window(3.0, received=30, bad_input=30), last_bad_input="unsupported encoding '32FC7'")
    )
    assert (verdict.level, verdict.cause) == ("warn", "bad_input")
    assert "32FC7" in verdict.message


def test_receive_buffer_warning_only_below_what_large_frames_need() -> None:
    assert "sysctl -w net.core.rmem_max=33554432" in receive_buffer_warning(212992)
    assert receive_buffer_warning(64 << 20) == "" and receive_buffer_warning(None) == ""


def test_the_receive_buffer_advice_matches_what_the_node_profile_asks_for() -> None:
    import xml.etree.ElementTree as ET

    from seg_perception.resources import config_path
    from seg_perception.ros.input_health import WANTED_RECEIVE_BUFFER

    sizes = [
        int(e.text or 0)
        for e in ET.parse(config_path("fastdds_large_images.xml")).iter()
        if e.tag.endswith("receiveBufferSize")
    ]
    assert sizes == [WANTED_RECEIVE_BUFFER]
