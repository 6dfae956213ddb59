"""/diagnostics of a segmentation node: one status for the node (state, rate, latency split
into transport and processing, counters, batches, model, backend, device) and one per camera
(its topic, publishers and their QoS, the reliability it subscribed with, counters, and the
verdict of :mod:`.input_health` when its input is silent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticStatus

from seg_perception.inference.threads import cpu_threads
from seg_perception.ros.diagnostics import OK, WARN, diagnostic_status
from seg_perception.ros.frame_buffer import CameraCounters
from seg_perception.ros.input_health import WARN_LEVEL
from seg_perception.ros.qos import describe_offers

if TYPE_CHECKING:
    from seg_perception.ros.channels import CameraChannel
    from seg_perception.ros.node_base import SegmentationNodeBase


def node_statuses(node: SegmentationNodeBase) -> list[DiagnosticStatus]:
    """The node's summary status first (consumers that read one status per node read that one),
    then one status per camera."""
    counters = node.buffer.snapshot()
    keys = ("received", "processed", "dropped", "bad_input")
    total = {k: sum(getattr(c, k) for c in counters.values()) for k in keys}
    latency = node.stats.percentiles_ms()
    transport = node.transport_stats.percentiles_ms()
    processing = node.processing_stats.percentiles_ms()
    fqn = node.get_fully_qualified_name()
    values: dict[str, Any] = {
        "state": "active" if node.active else "inactive",
        "rate_hz": node.stats.rate_hz(),
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
        "inference_errors": node.inference_errors,
        "overlays_rendered": node.overlays_rendered,
        "cameras": len(node.channels),
        "inputs_subscribed": sum(c.subscribed for c in node.channels.values()),
        "batches": node.batches,
        "mean_batch_size": node.batched_frames / node.batches if node.batches else 0.0,
        "largest_batch": node.largest_batch,
        "cpu_threads": cpu_threads(),
        "udp_receive_buffer_max": node.rmem_max if node.rmem_max is not None else "unknown",
        **node.diagnostic_values(),
    }
    values["frames_lost"] = sum(c.input.lost() for c in node.channels.values())
    camera_warnings = [
        f"camera {name or '(default)'}: {c.verdict.message}"
        for name, c in node.channels.items()
        if c.verdict is not None and c.verdict.level == WARN_LEVEL
    ]
    degraded = total["bad_input"] or node.inference_errors
    message = "; ".join(camera_warnings) or ("bad input or inference errors seen" if degraded else "ok")
    # The node summary first: consumers that read one status per node read this one.
    statuses = [
        diagnostic_status(
            name=f"{fqn}: {node.config_name} segmentation",
            hardware_id=str(values.get("device", "")),
            level=WARN if degraded or camera_warnings else OK,
            message=message,
            values=values,
        )
    ]
    statuses += [
        camera_status(node, fqn, name, channel, counters.get(name), str(values.get("device", "")))
        for name, channel in node.channels.items()
    ]
    return statuses


def camera_status(
    node: SegmentationNodeBase, fqn: str, name: str, channel: CameraChannel, c: CameraCounters | None, device: str
) -> DiagnosticStatus:
    """One camera's status: its counters, its publishers and their QoS, and why it is silent."""
    lat = channel.stats.percentiles_ms()
    verdict = channel.verdict
    warn = bool(verdict and verdict.level == WARN_LEVEL)
    if warn:
        message = verdict.message if verdict else ""
    elif c and c.bad_input:
        message = "bad input seen"
    else:
        message = verdict.message if verdict else "ok"
    topics = channel.input.topics
    return diagnostic_status(
        name=f"{fqn}: camera {name or '(default)'}",
        hardware_id=device,
        level=WARN if warn or (c and c.bad_input) else OK,
        message=message,
        values={
            "input_topic": channel.input.image_topic,
            "input_subscribed": channel.subscribed,
            "input_subscribe_events": channel.input.subscribe_events,
            "input_reliability": ",".join(t.reliability or "-" for t in topics),
            "publishers": sum(len(t.offers) for t in topics),
            "publisher_qos": "; ".join(describe_offers(t.offers) for t in topics),
            "input_status": verdict.cause if verdict else "",
            "rate_hz": channel.stats.rate_hz(),
            "latency_p50_ms": lat["p50"],
            "latency_p95_ms": lat["p95"],
            "latency_p99_ms": lat["p99"],
            "frames_received": c.received if c else 0,
            "frames_processed": c.processed if c else 0,
            "frames_dropped": c.dropped if c else 0,
            "frames_lost": channel.input.lost(),
            "bad_input": c.bad_input if c else 0,
        },
    )
