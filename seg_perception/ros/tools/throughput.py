"""Throughput of the combined perception_node against semantic + instance nodes side by side,
on the same camera stream over DDS (``python -m seg_perception.ros.tools.throughput``).

A camera publishes one generated 1280x720 frame at ``--rate`` Hz (faster than the models) for
``--seconds``; we count the frames for which every output arrived: class map and instance
map (plus the panoptic map for the combined node), and each output's own rate. Separate
nodes pick their newest frames independently, so few frames get both outputs. Both set-ups use the same weights and
input sizes, so the difference is decoding/pre-processing once and sharing one process.

``--cameras N``: N cameras publish 1280x720 frames at ``--rate`` Hz each, and three semantic
set-ups serve them: one node batching all cameras, N single-camera nodes, and one node with
the camera list but ``max_batch: 1`` (no batching). Reported per set-up: frames/s over all
cameras (class maps received), per-camera frames/s, and latency percentiles (receive time -
input stamp, in the camera process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from seg_perception.apps.timing import write_report
from seg_perception.ros.messages import image_msg
from seg_perception.ros.tools.harness import GraphClient, NodeProcess
from seg_perception.synthetic.frames import generate_frame

SIZE = {"input_height": 256, "input_width": 512, "device": "cpu"}


def _run(nodes: list[tuple[str, dict[str, Any]]], outputs: list[str], seconds: float, rate: float) -> dict[str, Any]:
    ns = "/tp"
    procs = [NodeProcess(module, ns, params) for module, params in nodes]
    client = GraphClient("throughput_camera")
    try:
        for topic in outputs:
            client.subscribe(Image, f"{ns}/{topic}")
        pub = client.publisher(Image, f"{ns}/image")
        expected_subs = len(procs)
        if not client.wait_for(lambda: pub.get_subscription_count() >= expected_subs, 120):
            raise RuntimeError("nodes did not subscribe: " + " | ".join(p.output[-500:] for p in procs))
        frame = generate_frame(3, 0, 1280, 720, "day").image
        warm = image_msg(frame, client.now_msg_header("warm"), "rgb8")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(not client.messages(f"{ns}/{t}") for t in outputs):
            pub.publish(warm)
            time.sleep(0.5)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            pub.publish(image_msg(frame, client.now_msg_header("load"), "rgb8"))
            sent += 1
            time.sleep(1.0 / rate)
        time.sleep(3.0)
        stamps = [
            {
                (m.header.stamp.sec, m.header.stamp.nanosec)
                for m in client.messages(f"{ns}/{t}")
                if m.header.frame_id == "load"
            }
            for t in outputs
        ]
        complete = set.intersection(*stamps)
        per_output = {t: round(len(st) / seconds, 2) for t, st in zip(outputs, stamps)}
        return {
            "sent": sent,
            "complete_frames": len(complete),
            "frames_per_s": len(complete) / seconds,
            "per_output_frames_per_s": per_output,
        }
    finally:
        client.close()
        for p in procs:
            p.stop()


def _run_cameras(
    nodes: list[tuple[str, dict[str, Any]]], cameras: list[str], seconds: float, rate: float
) -> dict[str, Any]:
    """N cameras at ``rate`` Hz each into ``nodes``; class maps counted and timed per camera."""
    procs = [NodeProcess("seg_perception.ros.semantic_node", ns, params) for ns, params in nodes]
    client = GraphClient("throughput_cameras")
    try:
        pubs = {}
        for cam in cameras:
            client.subscribe(Image, f"{cam}/semantic/class_map", depth=1000)
            pubs[cam] = client.publisher(Image, f"{cam}/image")
        if not client.wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 180):
            raise RuntimeError("nodes did not subscribe: " + " | ".join(p.output[-500:] for p in procs))
        frame = generate_frame(3, 0, 1280, 720, "day").image
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and any(not client.messages(f"{c}/semantic/class_map") for c in cameras):
            for cam in cameras:  # warm-up: every model has run once
                pubs[cam].publish(image_msg(frame, client.now_msg_header("warm"), "rgb8"))
            time.sleep(0.5)
        time.sleep(2.0)  # let warm-up frames drain
        # Receive times are monotonic; stamps are ROS time: one offset converts.
        offset = client.node.get_clock().now().nanoseconds * 1e-9 - time.monotonic()
        start = time.monotonic()
        sent, tick = 0, 0
        while time.monotonic() - start < seconds:
            for cam in cameras:
                pubs[cam].publish(image_msg(frame, client.now_msg_header("load"), "rgb8"))
                sent += 1
            tick += 1
            time.sleep(max(0.0, start + tick / rate - time.monotonic()))
        time.sleep(3.0)
        latencies, per_camera = [], {}
        for cam in cameras:
            got = [(t, m) for t, m in client.timed(f"{cam}/semantic/class_map") if m.header.frame_id == "load"]
            per_camera[cam] = round(len(got) / seconds, 2)
            latencies += [t + offset - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9) for t, m in got]
        lat_ms = np.asarray(latencies) * 1e3
        pct = {f"latency_p{q}_ms": round(float(np.percentile(lat_ms, q)), 1) if lat_ms.size else None for q in (50, 95)}
        return {
            "nodes": len(procs),
            "sent": sent,
            "frames": len(latencies),
            "frames_per_s": round(len(latencies) / seconds, 2),
            **pct,
            "per_camera_frames_per_s": per_camera,
        }
    finally:
        client.close()
        for p in procs:
            p.stop()


def _cameras_report(count: int, seconds: float, rate: float) -> dict[str, Any]:
    ns = "/tp"
    names = [f"cam{i}" for i in range(count)]
    topics = [f"{ns}/{n}" for n in names]
    batched = _run_cameras([(ns, {**SIZE, "cameras": names})], topics, seconds, rate)
    single = _run_cameras([(t, SIZE) for t in topics], topics, seconds, rate)
    unbatched = _run_cameras([(ns, {**SIZE, "cameras": names, "max_batch": 1})], topics, seconds, rate)
    return {
        "cameras": count,
        "camera": "1280x720 rgb8",
        "rate_per_camera_hz": rate,
        "seconds": seconds,
        "input": SIZE,
        "cpu_count": os.cpu_count(),
        "batched_one_node": batched,
        "single_camera_nodes": single,
        "one_node_max_batch_1": unbatched,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="frames/s (per camera with --cameras)")
    parser.add_argument(
        "--cameras",
        type=int,
        default=0,
        help="N > 0: compare one batched node, N single-camera nodes and max_batch 1 on N cameras",
    )
    parser.add_argument("--json", default=None, help="output file (default out/bench/<benchmark>.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if args.cameras > 0:
        _write(
            _cameras_report(args.cameras, args.seconds, args.rate),
            args.json or f"out/bench/multicamera_{args.cameras}.json",
        )
        return 0
    combined = _run(
        [
            (
                "seg_perception.ros.perception_node",
                {**{f"semantic.{k}": v for k, v in SIZE.items()}, **{f"instance.{k}": v for k, v in SIZE.items()}},
            )
        ],
        ["semantic/class_map", "instance/instance_map", "panoptic/panoptic_map"],
        args.seconds,
        args.rate,
    )
    separate = _run(
        [("seg_perception.ros.semantic_node", SIZE), ("seg_perception.ros.instance_node", SIZE)],
        ["semantic/class_map", "instance/instance_map"],
        args.seconds,
        args.rate,
    )
    report = {
        "combined": combined,
        "separate": separate,
        "input": SIZE,
        "camera": "1280x720 rgb8",
        "ratio": combined["frames_per_s"] / max(separate["frames_per_s"], 1e-9),
    }
    _write(report, args.json or "out/bench/combined_vs_separate.json")
    return 0


def _write(report: dict[str, Any], path: str) -> None:
    print(json.dumps(report, indent=2))
    write_report(report, path)


if __name__ == "__main__":
    raise SystemExit(main())
