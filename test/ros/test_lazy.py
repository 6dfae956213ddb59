"""`lazy: true`: a camera's input is subscribed only while one of its outputs has a subscriber,
and overlays are rendered only while someone subscribes to them."""

from __future__ import annotations

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.ros.tools.harness import GraphClient, NodeProcess, find_message

from .helpers import camera_diagnostics, latest_diagnostics, make_image, stamped

pytestmark = [pytest.mark.ros, pytest.mark.slow]
MODULE = "seg_perception.ros.semantic_node"
NS = "/lazy"


def publish_until_received(camera: GraphClient, pub, listener: GraphClient, topic: str, seed: int, timeout: float = 30):
    """Publish frames (a fresh stamp every second) until ``listener`` receives the output of one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = stamped(make_image("rgb8", 320, 240, seed=seed), camera, "lazy")
        pub.publish(msg)
        if listener.wait_for(lambda m=msg: find_message(listener.messages(topic), m.header.stamp) is not None, 1.0):
            return msg
    return None


def test_lazy_node_subscribes_a_camera_only_while_its_outputs_are_watched(small_semantic_params: dict) -> None:
    params = dict(small_semantic_params, lazy=True, cameras=["a", "b"], diagnostics_period=0.5, publish_overlay=True)
    node = NodeProcess(MODULE, NS, params)
    camera = GraphClient("lazy_camera")
    listeners: list[GraphClient] = []
    try:
        camera.subscribe(DiagnosticArray, "/diagnostics")
        pub_a = camera.publisher(Image, f"{NS}/a/image")
        pub_b = camera.publisher(Image, f"{NS}/b/image")
        # The node is up and active (its diagnostics report), yet nobody listens: no input.
        assert camera.wait_for(lambda: latest_diagnostics(camera, NS).get("state") == "active", 60), node.output
        time.sleep(2 * 0.5 + 0.5)  # several lazy polls
        assert (pub_a.get_subscription_count(), pub_b.get_subscription_count()) == (0, 0)
        assert latest_diagnostics(camera, NS)["inputs_subscribed"] == "0"

        # A listener on camera a's class map: a is subscribed and served, b stays unsubscribed.
        class_map = GraphClient("lazy_class_map_listener")
        listeners.append(class_map)
        class_map.subscribe(Image, f"{NS}/a/semantic/class_map")
        assert camera.wait_for(lambda: pub_a.get_subscription_count() == 1, 20), node.output
        assert publish_until_received(camera, pub_a, class_map, f"{NS}/a/semantic/class_map", seed=1) is not None
        assert pub_b.get_subscription_count() == 0
        assert camera.wait_for(lambda: camera_diagnostics(camera, NS, "a").get("input_subscribed") == "True", 5)
        assert camera_diagnostics(camera, NS, "b")["input_subscribed"] == "False"
        # Frames were processed, but no one watches the overlay: none rendered.
        assert camera.wait_for(lambda: int(latest_diagnostics(camera, NS).get("frames_processed", 0)) > 0, 5)
        assert latest_diagnostics(camera, NS)["overlays_rendered"] == "0"

        # An overlay listener: overlays are rendered now.
        overlay = GraphClient("lazy_overlay_listener")
        listeners.append(overlay)
        overlay.subscribe(Image, f"{NS}/a/semantic/overlay")
        assert camera.wait_for(lambda: node_sees_listeners(camera, f"{NS}/a/semantic/overlay"), 20)
        assert publish_until_received(camera, pub_a, overlay, f"{NS}/a/semantic/overlay", seed=2) is not None
        assert camera.wait_for(lambda: int(latest_diagnostics(camera, NS).get("overlays_rendered", 0)) > 0, 5)

        # The last listener leaves: the input is unsubscribed and processing stops.
        for listener in listeners:
            listener.close()
        listeners.clear()
        assert camera.wait_for(lambda: pub_a.get_subscription_count() == 0, 20), node.output
        assert camera.wait_for(lambda: latest_diagnostics(camera, NS).get("inputs_subscribed") == "0", 5)
        time.sleep(1.0)  # diagnostics after the last in-flight frame
        processed = int(latest_diagnostics(camera, NS)["frames_processed"])
        for seed in range(5):
            pub_a.publish(stamped(make_image("rgb8", 320, 240, seed=seed), camera, "unwatched"))
            time.sleep(0.3)
        time.sleep(1.0)
        assert int(latest_diagnostics(camera, NS)["frames_processed"]) == processed
        assert int(camera_diagnostics(camera, NS, "a")["input_subscribe_events"]) == 1
    finally:
        for listener in listeners:
            listener.close()
        camera.close()
        assert node.stop() == 0, node.output


def node_sees_listeners(client: GraphClient, topic: str) -> bool:
    """Whether the node's publisher on ``topic`` has matched a subscriber (graph introspection)."""
    return any(info.node_name != client.node.get_name() for info in client.node.get_subscriptions_info_by_topic(topic))
