"""Latency of the semantic node through real DDS, and its behaviour under overload
(``python -m seg_perception.ros.tools.latency_bench``; JSON out).

This process is the camera: it publishes 1920x1080 rgb8 ``sensor_msgs/Image`` frames (the
sensor-data QoS a camera driver uses) to the real ``semantic_node`` running in its own
process (:class:`~.harness.NodeProcess`), and subscribes to ``semantic/class_map`` and
``/diagnostics``. Times are taken on one clock in this process: publish time (just before
``publish``; the frame's header stamp is set then too) and arrival of the class map carrying
that stamp.

1. **In-core reference** (before the node starts, machine otherwise as idle as it is): the
   same core in this process, model only and end to end (message -> class-map message), as
   ``seg-perception bench`` measures them.
2. **Serial round trips** (no queueing): publish one frame, wait for its class map, pause,
   repeat. extra DDS cost = round trip - in-core end to end measured with the same pauses
   (an idle gap before a frame makes the core itself slower: cold caches, sleeping thread
   pools); the node's own latency (/diagnostics, header stamp -> its publish) splits it into
   the inbound and outbound hops.
3. **Overload**: the camera at ``--overload`` x the inference rate (1 / in-core end to end)
   for ``--seconds``. Reported: latency of every processed frame (publish -> class map
   received, measured here) and the node's own latency percentiles, frames skipped by
   newest-frame-wins (``frames_dropped`` on /diagnostics), frames lost on the way in (sent -
   ``frames_received``), and the node process's resident memory (``VmRSS``) sampled every
   ``--rss-period`` seconds. Target: p99 < 2 x model-only latency, flat memory.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from seg_perception.apps.bench import semantic_case
from seg_perception.apps.cli_common import add_param_option
from seg_perception.apps.timing import Case, _summary, camera_message, run_cases, write_report
from seg_perception.config.records import SemanticModelConfig, node_defaults
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.tools.harness import GraphClient, NodeProcess
from seg_perception.synthetic.frames import generate_frame

NAMESPACE = "/latency_bench"
NODE_MODULE = "seg_perception.ros.semantic_node"


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        low = value.lower()
        parsed: Any = value
        if low in ("true", "false"):
            parsed = low == "true"
        else:
            for cast in (int, float):
                try:
                    parsed = cast(value)
                    break
                except ValueError:
                    pass
        out[key] = parsed
    return out


class Camera:
    """Publishes one prepared frame with fresh stamps; records publish and arrival times."""

    def __init__(self, client: GraphClient, pixels: np.ndarray) -> None:
        self.client = client
        self.msg = camera_message(pixels, frame_id="camera")
        self.pub = client.node.create_publisher(Image, f"{NAMESPACE}/image", qos_profile_sensor_data)
        self.sent: dict[tuple[int, int], tuple[str, float]] = {}  # stamp -> (phase, publish time)
        self.arrived: dict[tuple[int, int], float] = {}
        self.diagnostics: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        reliable = QoSProfile(depth=50)
        reliable.reliability = ReliabilityPolicy.RELIABLE
        client.node.create_subscription(Image, f"{NAMESPACE}/semantic/class_map", self._on_class_map, reliable)
        client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _on_class_map(self, msg: Image) -> None:
        now = time.monotonic()
        with self._lock:
            self.arrived[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        for status in msg.status:
            if status.name.startswith(NAMESPACE) and status.name.endswith("segmentation"):
                with self._lock:
                    self.diagnostics.append((now, {kv.key: kv.value for kv in status.values}))

    def publish(self, phase: str) -> tuple[int, int]:
        stamp = self.client.now_msg()
        self.msg.header.stamp = stamp
        key = (stamp.sec, stamp.nanosec)
        with self._lock:
            self.sent[key] = (phase, time.monotonic())
        self.pub.publish(self.msg)
        return key

    def wait_arrival(self, key: tuple[int, int], timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if key in self.arrived:
                    return self.arrived[key] - self.sent[key][1]
            time.sleep(0.001)
        return None

    def latencies_ms(self, phase: str) -> list[float]:
        with self._lock:
            return [(self.arrived[k] - t) * 1e3 for k, (p, t) in self.sent.items() if p == phase and k in self.arrived]

    def count(self, phase: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.sent.values() if p == phase)

    def latest_diagnostics(self, after: float, timeout: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                fresh = [v for t, v in self.diagnostics if t > after]
            if fresh:
                return fresh[-1]
            time.sleep(0.05)
        raise RuntimeError("no /diagnostics from the node")


def _float(values: dict[str, str], key: str) -> float:
    return float(values.get(key, "nan"))


def in_core(params: dict[str, Any], pixels: np.ndarray, iterations: int, pause: float) -> dict[str, Any]:
    """The core in this process: back to back (hot), and paced like the serial round trips
    (``pause`` s idle before each frame: caches and idle thread pools go cold, as in the node)."""
    segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))
    case: Case = semantic_case(segmenter, camera_message(pixels), confidence=False)
    run_cases([case], iterations, warmup=3)
    report = case.report()
    paced = []
    for _ in range(iterations):
        time.sleep(pause)
        t0 = time.perf_counter()
        case.end_to_end()
        paced.append((time.perf_counter() - t0) * 1e3)
    out = {k: report[k] for k in ("backend", "device", "precision", "input_size", "model_only", "end_to_end")}
    out["end_to_end_paced"] = _summary(paced)
    out["pause_s"] = pause
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    params = {**node_defaults("semantic"), **_parse_params(args.param or [])}
    node_params = _parse_params(args.param or [])
    pixels = generate_frame(0, 0, args.width, args.height, "day").image
    load = {"start": list(os.getloadavg())}
    reference = in_core(params, pixels, args.core_iterations, args.serial_pause)
    model_ms = reference["model_only"]["p50_ms"]
    core_ms = reference["end_to_end"]["p50_ms"]
    paced_ms = reference["end_to_end_paced"]["p50_ms"]
    print(
        f"in core: model only p50 {model_ms:.1f} ms, end to end p50 {core_ms:.1f} ms "
        f"({paced_ms:.1f} ms paced like the serial frames)"
    )

    node = NodeProcess(NODE_MODULE, NAMESPACE, node_params)
    client = GraphClient("latency_bench_camera")
    report: dict[str, Any] = {
        "frame": f"{args.width}x{args.height} rgb8",
        "node": NODE_MODULE,
        "node_params": node_params,
        "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
        "in_core": reference,
    }
    try:
        camera = Camera(client, pixels)
        if not client.wait_for(lambda: camera.pub.get_subscription_count() >= 1, 120):
            raise RuntimeError(f"node did not subscribe: {node.output[-2000:]}")
        deadline = time.monotonic() + 120  # warm-up: until class maps come back
        while time.monotonic() < deadline:
            if (
                camera.wait_arrival(camera.publish("warmup"), 2.0) is not None
                and len(camera.latencies_ms("warmup")) >= 5
            ):
                break
        else:
            raise RuntimeError(f"no class maps from the node: {node.output[-2000:]}")

        if not args.skip_serial:
            for _ in range(args.serial_frames):
                camera.wait_arrival(camera.publish("serial"), 10.0)
                time.sleep(args.serial_pause)
            serial_ms = camera.latencies_ms("serial")
            diag = camera.latest_diagnostics(after=time.monotonic())
            round_trip = _summary(serial_ms)
            node_p50 = _float(diag, "latency_p50_ms")  # window: these frames + the few warm-up ones
            report["serial"] = {
                "frames": args.serial_frames,
                "received": len(serial_ms),
                "round_trip": round_trip,
                "node_latency_p50_ms": node_p50,
                # against the paced in-core time (same idle gaps as these frames) ...
                "extra_dds_ms_p50": round_trip["p50_ms"] - paced_ms,
                "inbound_ms_p50": node_p50 - paced_ms,
                "outbound_ms_p50": round_trip["p50_ms"] - node_p50,
                # ... and against the back-to-back in-core time (an upper bound)
                "extra_vs_hot_core_ms_p50": round_trip["p50_ms"] - core_ms,
            }
            s = report["serial"]
            print(
                f"serial: round trip p50 {round_trip['p50_ms']:.1f} ms (p95 {round_trip['p95_ms']:.1f}); node "
                f"p50 {node_p50:.1f} ms; extra DDS cost p50 {s['extra_dds_ms_p50']:.1f} ms "
                f"(in {s['inbound_ms_p50']:.1f} + out {s['outbound_ms_p50']:.1f}; "
                f"{s['extra_vs_hot_core_ms_p50']:.1f} ms against the back-to-back core)"
            )

        if not args.skip_overload:
            report["overload"] = overload(camera, node, args, core_ms, model_ms)
    finally:
        client.close()
        report["node_exit_code"] = node.stop()
        load["end"] = list(os.getloadavg())
        report["load_average"] = load
    return report


def overload(
    camera: Camera, node: NodeProcess, args: argparse.Namespace, core_ms: float, model_ms: float
) -> dict[str, Any]:
    rate = args.overload * 1000.0 / core_ms
    period = 1.0 / rate
    before = camera.latest_diagnostics(after=time.monotonic())
    rss: list[tuple[float, int]] = []
    loads: list[float] = []
    start = time.monotonic()
    next_rss = start
    next_pub = start
    while (now := time.monotonic()) - start < args.seconds:
        if now >= next_rss:
            rss.append((round(now - start, 1), node.rss_kb()))
            loads.append(os.getloadavg()[0])
            next_rss += args.rss_period
        camera.publish("overload")
        next_pub += period
        delay = next_pub - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_pub = time.monotonic()  # the camera itself cannot keep up: do not burst
    elapsed = time.monotonic() - start
    rss.append((round(time.monotonic() - start, 1), node.rss_kb()))
    time.sleep(2.0)
    after = camera.latest_diagnostics(after=time.monotonic())
    sent = camera.count("overload")
    lat = camera.latencies_ms("overload")
    received = int(after["frames_received"]) - int(before["frames_received"])
    dropped = int(after["frames_dropped"]) - int(before["frames_dropped"])
    processed = int(after["frames_processed"]) - int(before["frames_processed"])
    rss_kb = [v for _, v in rss]
    result = {
        "seconds": elapsed,
        "target_rate_hz": rate,
        "sent": sent,
        "sent_rate_hz": sent / elapsed,
        "node_frames_received": received,
        "lost_in_transport": sent - received,
        "node_frames_processed": processed,
        "skipped_newest_frame_wins": dropped,
        "class_maps_received": len(lat),
        "processed_rate_hz": len(lat) / elapsed,
        "latency_measured_here": _summary(lat) if lat else None,
        "node_latency_ms": {k: _float(after, f"latency_{k}_ms") for k in ("p50", "p95", "p99")},
        "node_latency_window": "the node's last 300 frames",
        "model_only_p50_ms": model_ms,
        "target_p99_ms": 2 * model_ms,
        "rss_kb": {"start": rss_kb[0], "end": rss_kb[-1], "max": max(rss_kb), "min": min(rss_kb), "samples": rss},
        "load_average_1min_during": {"min": min(loads), "max": max(loads)},
    }
    here = result["latency_measured_here"]
    result["p99_meets_target"] = bool(here and here["p99_ms"] < result["target_p99_ms"])
    print(
        f"overload: camera {result['sent_rate_hz']:.1f} Hz for {elapsed:.0f} s (target {rate:.1f} Hz), node "
        f"processed {processed} ({result['processed_rate_hz']:.1f} Hz), skipped {dropped}, lost in transport "
        f"{result['lost_in_transport']}; latency p50/p95/p99 here "
        + (f"{here['p50_ms']:.1f}/{here['p95_ms']:.1f}/{here['p99_ms']:.1f} ms" if here else "n/a")
        + f", node p99 {result['node_latency_ms']['p99']:.1f} ms; target p99 < {2 * model_ms:.1f} ms; "
        f"RSS start/end/max {rss_kb[0] / 1024:.0f}/{rss_kb[-1] / 1024:.0f}/{max(rss_kb) / 1024:.0f} MiB"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--core-iterations", type=int, default=30, help="in-core reference iterations")
    parser.add_argument("--serial-frames", type=int, default=30)
    parser.add_argument("--serial-pause", type=float, default=0.2, help="seconds between serial frames")
    parser.add_argument("--seconds", type=float, default=120.0, help="overload duration")
    parser.add_argument("--overload", type=float, default=3.0, help="camera rate / inference rate")
    parser.add_argument("--rss-period", type=float, default=5.0)
    parser.add_argument("--skip-serial", action="store_true")
    parser.add_argument("--skip-overload", action="store_true")
    add_param_option(parser, "node parameter, also used for the in-core reference (default: config/semantic.yaml)")
    parser.add_argument("--json", default="out/bench/latency_dds.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    write_report(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
