"""`lifecycle: true`: the node is a managed node driven through its real lifecycle services
(`<node>/change_state`, `<node>/get_state`) from another process's client node."""

from __future__ import annotations

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from sensor_msgs.msg import Image

from seg_perception.ros.tools.harness import GraphClient, NodeProcess, find_message

from .helpers import Lifecycle, latest_diagnostics, make_image, publish_until, stamped

pytestmark = [pytest.mark.ros, pytest.mark.slow]
MODULE = "seg_perception.ros.semantic_node"
NODE = "semantic_segmentation_node"


def start(namespace: str, params: dict) -> tuple[NodeProcess, GraphClient, Lifecycle]:
    node = NodeProcess(MODULE, namespace, params)
    client = GraphClient(f"lifecycle_client_{namespace.strip('/')}")
    return node, client, Lifecycle(client, f"{namespace}/{NODE}")


def test_managed_node_walks_every_transition_through_its_services(small_semantic_params: dict) -> None:
    ns = "/lc"
    node, client, lc = start(ns, dict(small_semantic_params, lifecycle=True, diagnostics_period=0.5))
    out_topic = f"{ns}/semantic/class_map"
    try:
        client.subscribe(Image, out_topic)
        client.subscribe(DiagnosticArray, "/diagnostics")
        cam = client.publisher(Image, f"{ns}/image")
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED, node.output
        assert client.node.count_publishers(out_topic) == 0  # nothing made before configure
        assert not lc.transition(Transition.TRANSITION_ACTIVATE)  # not from unconfigured
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED

        # configure: models and publishers, no subscription yet
        assert lc.transition(Transition.TRANSITION_CONFIGURE), node.output
        assert lc.state() == State.PRIMARY_STATE_INACTIVE
        assert client.wait_for(lambda: client.node.count_publishers(out_topic) == 1, 20)
        assert client.wait_for(lambda: latest_diagnostics(client, ns).get("state") == "inactive", 10)
        assert cam.get_subscription_count() == 0

        # activate: subscribes and serves
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        assert lc.state() == State.PRIMARY_STATE_ACTIVE
        assert client.wait_for(lambda: cam.get_subscription_count() == 1, 20)
        first = stamped(make_image("rgb8", 320, 240, seed=1), client, "active")
        out = publish_until(client, cam, first, out_topic)
        assert out is not None and out.header == first.header

        # deactivate: unsubscribes, nothing processed, models stay loaded
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
        assert lc.state() == State.PRIMARY_STATE_INACTIVE
        assert client.wait_for(lambda: cam.get_subscription_count() == 0, 20)
        ignored = stamped(make_image("rgb8", 320, 240, seed=2), client, "inactive")
        cam.publish(ignored)
        time.sleep(2.0)
        assert find_message(client.messages(out_topic), ignored.header.stamp) is None

        # activate again: serves again without loading the model a second time
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        again = stamped(make_image("rgb8", 320, 240, seed=3), client, "again")
        assert client.wait_for(lambda: cam.get_subscription_count() == 1, 20)
        assert publish_until(client, cam, again, out_topic) is not None
        assert node.output.count("configured:") == 1, node.output

        # deactivate + cleanup: publishers gone, back to unconfigured; configure works again
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
        assert lc.transition(Transition.TRANSITION_CLEANUP)
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert client.wait_for(lambda: client.node.count_publishers(out_topic) == 0, 20)
        assert lc.transition(Transition.TRANSITION_CONFIGURE)
        assert node.output.count("configured:") == 2

        # shutdown from inactive: finalized, everything released, the process still up
        assert lc.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert lc.state() == State.PRIMARY_STATE_FINALIZED
        assert client.wait_for(lambda: client.node.count_publishers(out_topic) == 0, 20)
        assert node.proc.poll() is None
    finally:
        client.close()
        assert node.stop() == 0, node.output


def test_failing_configure_is_a_failed_transition_and_the_node_stays_up(small_semantic_params: dict) -> None:
    ns = "/lc_bad"
    node, client, lc = start(ns, dict(small_semantic_params, lifecycle=True, checkpoint="/nonexistent/deeplab.pth"))
    try:
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED, node.output
        assert not lc.transition(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert client.wait_for(lambda: "configure failed" in node.output, 10), node.output
        assert "/nonexistent/deeplab.pth" in node.output and "Traceback" not in node.output
        assert node.proc.poll() is None
        assert lc.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)  # shutdown from unconfigured
        assert lc.state() == State.PRIMARY_STATE_FINALIZED
    finally:
        client.close()
        assert node.stop() == 0, node.output


def test_plain_node_offers_no_lifecycle_services_and_ctrl_c_shuts_it_down(small_semantic_params: dict) -> None:
    ns = "/lc_plain"
    node = NodeProcess(MODULE, ns, dict(small_semantic_params))
    client = GraphClient("lifecycle_client_plain")
    try:
        cam = client.publisher(Image, f"{ns}/image")
        assert client.wait_for(lambda: cam.get_subscription_count() == 1, 60), node.output  # active at once

        def services() -> set[str]:
            try:
                return {name for name, _ in client.node.get_service_names_and_types_by_node(NODE, ns)}
            except RuntimeError:  # NodeNameNonExistentError: the node is not discovered yet
                return set()

        # The node's own services are visible (discovery done)...
        assert client.wait_for(lambda: f"{ns}/{NODE}/get_parameters" in services(), 20)
        assert f"{ns}/{NODE}/change_state" not in services(), sorted(services())  # ...no lifecycle ones
    finally:
        client.close()
        assert node.stop() == 0, node.output
    assert "Unable to start transition" not in node.output and "[ERROR]" not in node.output, node.output
