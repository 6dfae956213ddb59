"""Behind a stock camera: outputs/s and latency of a segmentation node fed by a camera process
that loads no profile of ours (``python -m seg_perception.ros.tools.camera_bench``; JSON out).

The camera is :mod:`.stock_camera`, a plain rclpy publisher in its own process with a clean
environment: ``default`` QoS (reliable, keep last 10), ``sensor_data`` (best effort), or
``tuned`` (default QoS, but the camera's process loads a Fast DDS profile with a large
shared-memory segment: what a user who owns the driver can do). The node is ours (its runner
picks its own transport settings) or :mod:`.tutorial_node` (what a user writes instead). The
listener is this process, with default DDS settings too. Reported per case: frames sent,
class maps received and per second, latency (receive time here - header stamp, one clock)
p50/p99, the node's own counters from /diagnostics, and the share of the frames the model
has time for (``seconds x`` the in-core rate measured in this process, same parameters).
Tests call :func:`run_camera_case` with the same arguments (test/ros/test_stock_camera.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.apps.bench import semantic_case
from seg_perception.apps.timing import _summary, camera_message, machine, run_cases, write_report
from seg_perception.config.records import SemanticModelConfig, node_defaults
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.resources import config_path, resolve
from seg_perception.ros.tools import stock_camera, tutorial_node
from seg_perception.ros.tools.harness import GraphClient, NodeProcess, node_command, node_env, status_values
from seg_perception.ros.transport import profile_env, receive_buffer_limit

SEMANTIC_NODE = "seg_perception.ros.semantic_node"
CAMERA_QOS = {"default": "default", "sensor_data": "sensor_data", "tuned": "default"}


@dataclass(frozen=True)
class CameraCase:
    """One camera feeding one node for ``seconds``."""

    node: str = "ours"  # ours | tutorial
    camera: str = "default"  # default | sensor_data | tuned
    width: int = 1920
    height: int = 1080
    rate: float = 10.0
    seconds: float = 20.0
    encoding: str = "rgb8"

    @property
    def name(self) -> str:
        return f"{self.node} / {self.camera} camera / {self.width}x{self.height} @ {self.rate:g} Hz"


def core_rate(params: dict[str, Any], width: int, height: int, iterations: int = 15) -> dict[str, float]:
    """The semantic core's end-to-end rate on one ``width`` x ``height`` frame, in this process
    (message in -> class-map message out, as the node runs it): what the model has time for."""
    segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    case = semantic_case(segmenter, camera_message(pixels), confidence=False)
    run_cases([case], iterations, warmup=2)
    end_to_end = case.report()["end_to_end"]
    return {"end_to_end_p50_ms": end_to_end["p50_ms"], "rate_hz": 1000.0 / end_to_end["p50_ms"]}


def _node(case: CameraCase, namespace: str, params: dict[str, Any], env: dict[str, str]) -> NodeProcess:
    if case.node == "ours":
        command = node_command(SEMANTIC_NODE, namespace, params)
    else:
        command = [
            *tutorial_node_command(params),
            "--image",
            f"{namespace}/image",
            "--class-map",
            f"{namespace}/semantic/class_map",
        ]
    return NodeProcess.from_command(command, env)


def tutorial_node_command(params: dict[str, Any]) -> list[str]:
    return [
        sys.executable,
        tutorial_node.__file__,
        "--checkpoint",
        str(resolve(params["checkpoint"])),
        "--height",
        str(params["input_height"]),
        "--width",
        str(params["input_width"]),
    ]


def run_camera_case(
    case: CameraCase,
    params: dict[str, Any] | None = None,
    namespace: str = "/stock",
    node_env_extra: dict[str, str] | None = None,
    model_rate_hz: float | None = None,
    ready_timeout: float = 120.0,
) -> dict[str, Any]:
    """Start the node and a stock camera, let the camera run ``case.seconds``, measure.

    ``params``: our node's parameters (default config/semantic.yaml; the tutorial node takes
    its checkpoint and input size). ``node_env_extra``: variables for the node's process only
    (e.g. a Fast DDS profile of the user's). ``model_rate_hz``: the in-core rate for the
    "frames the model has time for" share.
    """
    params = dict(node_defaults("semantic"), **(params or {}))
    env = stock_camera.stock_environment(node_env())
    node = _node(case, namespace, params, dict(env, **(node_env_extra or {})))
    client = GraphClient("camera_bench_listener")
    class_map, image = f"{namespace}/semantic/class_map", f"{namespace}/image"
    try:
        client.subscribe(Image, class_map, depth=100)
        client.subscribe(DiagnosticArray, "/diagnostics", depth=100)
        if (
            not client.wait_for(
                lambda: client.node.count_subscribers(image) > 0 or node.proc.poll() is not None, ready_timeout
            )
            or node.proc.poll() is not None
        ):
            raise RuntimeError(f"{case.node} node did not subscribe {image}:\n{node.output[-3000:]}")
        camera_env = dict(env)
        if case.camera == "tuned":
            camera_env.update(profile_env(config_path("fastdds_large_images.xml")))
        camera = NodeProcess.from_command(
            stock_camera.stock_camera_command(
                topic=image,
                width=case.width,
                height=case.height,
                rate=case.rate,
                seconds=case.seconds,
                qos=CAMERA_QOS[case.camera],
                encoding=case.encoding,
                frame_id="stock_camera",
            ),
            camera_env,
        )
        # The node's view while the camera still publishes (its QoS choice, its verdict) ...
        _wait_until_sent(camera, client, image, case.seconds - 1.5)
        during = _node_diagnostics(client, namespace)
        camera.proc.wait(case.seconds + 120)
        time.sleep(2.0)  # the last frames' outputs, and a /diagnostics period
        sent = json.loads(camera.output.strip().splitlines()[-1])
    finally:
        # ... and its counters at the end.
        diagnostics = _node_diagnostics(client, namespace)
        client_outputs = client.timed(class_map)
        client.close()
        exit_code = node.stop()
    report = _report(case, sent, client_outputs, diagnostics, model_rate_hz, exit_code, node.output)
    report["node_diagnostics_during"] = during
    return report


def _wait_until_sent(camera: NodeProcess, client: GraphClient, topic: str, seconds: float) -> None:
    """Sleep ``seconds`` from the camera's first publication (it waits for a subscriber first)."""
    started = time.monotonic()
    while client.node.count_publishers(topic) == 0 and camera.proc.poll() is None:
        if time.monotonic() - started > 120:
            return
        time.sleep(0.05)
    time.sleep(max(seconds, 0.0))


def _report(
    case: CameraCase,
    sent: dict[str, Any],
    outputs: list[tuple[float, Any]],
    diagnostics: dict[str, dict[str, str]],
    model_rate_hz: float | None,
    exit_code: int,
    node_output: str,
) -> dict[str, Any]:
    stamps = {(s, ns) for s, ns in sent["stamps"]}
    offset = time.time() - time.monotonic()  # listener receive times (monotonic) -> wall clock
    latencies = [
        (t + offset - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)) * 1e3
        for t, m in outputs
        if (m.header.stamp.sec, m.header.stamp.nanosec) in stamps
    ]
    seconds = float(sent["seconds"])
    has_time_for = min(sent["sent"], seconds * model_rate_hz) if model_rate_hz else None
    report: dict[str, Any] = {
        "case": case.name,
        "node": case.node,
        "camera": case.camera,
        "width": case.width,
        "height": case.height,
        "rate_hz": case.rate,
        "seconds": seconds,
        "sent": sent["sent"],
        "outputs": len(latencies),
        "outputs_per_s": len(latencies) / seconds,
        "latency": _summary(latencies) if latencies else None,
        "model_rate_hz": model_rate_hz,
        "frames_model_has_time_for": has_time_for,
        "share_of_model_capacity": len(latencies) / has_time_for if has_time_for else None,
        "node_exit_code": exit_code,
        "node_diagnostics": diagnostics,
    }
    if not latencies:
        report["node_log_tail"] = node_output[-3000:]
    return report


def _node_diagnostics(client: GraphClient, namespace: str) -> dict[str, dict[str, str]]:
    """The newest status of each name under ``namespace``: {"node": {...}, "camera": {...}},
    each with its values plus ``level`` and ``message``."""
    found: dict[str, dict[str, str]] = {}
    for msg in reversed(client.messages("/diagnostics")):
        for status in msg.status:
            if not status.name.startswith(namespace + "/"):
                continue
            key = "camera" if ": camera" in status.name else "node"
            if key not in found:
                found[key] = status_values(status)
    return found


def _print_row(row: dict[str, Any]) -> None:
    lat = row["latency"]
    share = row["share_of_model_capacity"]
    diag = row["node_diagnostics"].get("node", {})
    print(
        f"{row['case']:<52} sent {row['sent']:>4}  outputs {row['outputs']:>4} ({row['outputs_per_s']:.1f}/s"
        + (f", {share:.0%} of the model's capacity" if share is not None else "")
        + ")  latency p50/p99 "
        + (f"{lat['p50_ms']:.0f}/{lat['p99_ms']:.0f} ms" if lat else "n/a")
        + (
            f"  node: received {diag.get('frames_received')}, dropped {diag.get('frames_dropped')}, "
            f"lost {diag.get('frames_lost')}"
            if diag
            else ""
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--cameras", nargs="+", default=["default", "sensor_data", "tuned"], choices=sorted(CAMERA_QOS))
    parser.add_argument("--nodes", nargs="+", default=["ours", "tutorial"], choices=["ours", "tutorial"])
    parser.add_argument("--uhd", action="store_true", help="add 3840x2160 at half the rate, our node, each camera")
    parser.add_argument("--json", default="out/bench/camera.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    params = node_defaults("semantic")
    rate = core_rate(params, 1920, 1080)
    print(
        f"in core (this process, 1920x1080): end to end p50 {rate['end_to_end_p50_ms']:.1f} ms, "
        f"{rate['rate_hz']:.1f} frames/s"
    )
    cases = [
        CameraCase(node, camera, rate=args.rate, seconds=args.seconds) for camera in args.cameras for node in args.nodes
    ]
    uhd_rate = None
    if args.uhd:
        uhd_rate = core_rate(params, 3840, 2160)
        print(f"in core (3840x2160): end to end p50 {uhd_rate['end_to_end_p50_ms']:.1f} ms")
        cases += [CameraCase("ours", camera, 3840, 2160, args.rate / 2, args.seconds) for camera in args.cameras]
    rows = []
    for case in cases:
        model_rate = uhd_rate if case.width == 3840 else rate
        row = run_camera_case(case, model_rate_hz=model_rate["rate_hz"] if model_rate else None)
        _print_row(row)
        rows.append(row)
    write_report(
        {
            "machine": {**machine(), "rmem_max": receive_buffer_limit()},
            "in_core_1080p": rate,
            "in_core_2160p": uhd_rate,
            "cases": rows,
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
