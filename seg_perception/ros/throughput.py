"""Throughput of the combined perception_node against semantic + instance nodes side by side,
on the same camera stream over DDS (``python -m seg_perception.ros.throughput``).

A camera publishes one generated 1280x720 frame at ``--rate`` Hz (faster than the models) for
``--seconds``; we count the frames for which every output arrived: class map and instance
map (plus the panoptic map for the combined node), and each output's own rate. Separate
nodes pick their newest frames independently, so few frames get both outputs. Both set-ups use the same weights and
input sizes, so the difference is decoding/pre-processing once and sharing one process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

from sensor_msgs.msg import Image

from ..synthetic import generate_frame
from .harness import GraphClient, NodeProcess
from .messages import image_msg
from .runner import use_large_image_profile

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
            {(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.messages(f"{ns}/{t}") if m.header.frame_id == "load"}
            for t in outputs
        ]
        complete = set.intersection(*stamps)
        per_output = {t: round(len(st) / seconds, 2) for t, st in zip(outputs, stamps)}
        return {"sent": sent, "complete_frames": len(complete), "frames_per_s": len(complete) / seconds,
                "per_output_frames_per_s": per_output}
    finally:
        client.close()
        for p in procs:
            p.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--json", default="out/bench/combined_vs_separate.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    use_large_image_profile()
    combined = _run(
        [("seg_perception.ros.perception_node",
          {**{f"semantic.{k}": v for k, v in SIZE.items()}, **{f"instance.{k}": v for k, v in SIZE.items()}})],
        ["semantic/class_map", "instance/instance_map", "panoptic/panoptic_map"], args.seconds, args.rate)
    separate = _run(
        [("seg_perception.ros.semantic_node", SIZE), ("seg_perception.ros.instance_node", SIZE)],
        ["semantic/class_map", "instance/instance_map"], args.seconds, args.rate)
    report = {"combined": combined, "separate": separate, "input": SIZE, "camera": "1280x720 rgb8",
              "ratio": combined["frames_per_s"] / max(separate["frames_per_s"], 1e-9)}
    print(json.dumps(report, indent=2))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
