"""`seg-perception demo` (`make demo`): a synthetic drive replayed through the live ROS 2 graph.

The command runs this module as a child process (``python -m seg_perception.ros.tools.demo``,
same options): the command line sits below the ROS layer.

1. generates a drive bag (1280x720 camera at 10 Hz + ground truth), or reuses it;
2. starts three real nodes, each in its own process, talking over Fast DDS with
   ``use_sim_time``: ``perception_node`` (both models, panoptic), ``bag_recorder`` (every
   output) and ``bag_player`` (the camera topic and ``/clock``, at ``--rate`` of real time
   so this CPU keeps up);
3. from the recorded bag and the drive's ground truth it writes an overlay video (mp4, camera |
   semantic / instances | panoptic), side-by-side PNGs, and a metrics report (the official
   Cityscapes / COCO / panoptic numbers, per condition, the node's latency and skipped frames).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.apps.cli_common import PROG, add_demo_options, run_guarded, setup_logging
from seg_perception.config import overrides
from seg_perception.errors import SegPerceptionError
from seg_perception.io import bags
from seg_perception.io.image import decode_image, to_rgb
from seg_perception.metrics.bags import evaluate_bags
from seg_perception.metrics.run import format_report, jsonable
from seg_perception.ros.tools.harness import GraphClient, NodeProcess
from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_drive_bag

NAMESPACE = "/camera"
CAMERA_TOPIC = f"{NAMESPACE}/image_raw"
FRAME_SIZE = (1280, 720)  # width, height of the simulated camera
FPS = 10.0
PANELS = ("semantic/overlay", "instance/overlay", "panoptic/overlay")
RECORDED = ("semantic/class_map", "instance/instance_map", "instance/detections", "panoptic/panoptic_map", *PANELS)


def _isolate_graph() -> None:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def drive_bag(out: Path, frames: int, seed: int) -> Path:
    """The demo drive, generated once per (seed, frames) and reused."""
    path = out / f"drive_seed{seed}_{frames}f"
    if (path / "metadata.yaml").is_file():
        print(f"demo: reusing the drive bag {path}")
        return path
    width, height = FRAME_SIZE
    print(f"demo: generating a {frames}-frame synthetic drive ({width}x{height} at {FPS:g} Hz, seed {seed}) -> {path}")
    return write_drive_bag(path, generate_drive(seed, frames, width, height, fps=FPS), fps=FPS)


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def run_demo(out: Path, frames: int, seed: int, params: dict[str, Any], rate: float = 0.2) -> int:
    _isolate_graph()
    out.mkdir(parents=True, exist_ok=True)
    bag = drive_bag(out, frames, seed)
    recorded = out / "outputs_bag"
    if recorded.exists():
        import shutil

        shutil.rmtree(recorded)
    # diagnostics_period runs on the bag's clock, which runs at `rate` of real time.
    node_params = {**params, "image_topic": "image_raw", "use_sim_time": True, "diagnostics_period": rate}
    params_file = Path(tempfile.mkstemp(prefix="seg_demo_", suffix=".yaml")[1])
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": _nested(node_params)}}))
    print("demo: starting perception_node, bag_recorder and bag_player, each in its own process, over DDS")
    node = NodeProcess("seg_perception.ros.perception_node", NAMESPACE, {}, str(params_file))
    topics = "[" + ",".join(f"{NAMESPACE}/{t}" for t in RECORDED) + "]"
    recorder = NodeProcess(
        "seg_perception.ros.bag_recorder", "/", {"bag": str(recorded), "topics": topics, "use_sim_time": True}
    )
    client = GraphClient("demo_monitor")
    player = None
    started = time.monotonic()
    failure = ""
    diagnostics: dict[str, str] = {}
    try:
        client.subscribe(DiagnosticArray, "/diagnostics", depth=100)
        client.subscribe(Image, f"{NAMESPACE}/panoptic/panoptic_map", depth=100)
        # Play only once the node listens and the recorder hears every output.
        wanted = [f"{NAMESPACE}/{t}" for t in RECORDED if t != "instance/detections"]  # vision_msgs is optional
        client.wait_for(
            lambda: (
                node.proc.poll() is not None
                or recorder.proc.poll() is not None
                or all(client.node.count_subscribers(t) >= 1 for t in wanted)
            ),
            180,
        )
        missing = [t for t in wanted if client.node.count_subscribers(t) < 1]
        if node.proc.poll() is not None or recorder.proc.poll() is not None or missing:
            failure = f"the graph did not come up (no subscriber on {missing})"
        else:
            print(f"demo: playing {bag.name} at {rate:g}x real time")
            # The player stays up after the last frame, so /clock keeps running for the node's
            # timers (/diagnostics) while the last frames are still being processed.
            player = NodeProcess(
                "seg_perception.ros.bag_player",
                "/",
                {
                    "bag": str(bag),
                    "rate": rate,
                    "topics": f"[{CAMERA_TOPIC}]",
                    "exit_when_done": False,
                    "wait_for_subscribers": f"[{CAMERA_TOPIC}]",
                    "wait_timeout": 120.0,
                },
            )
            if not client.wait_for(
                lambda: "played " in player.output or player.proc.poll() is not None, frames / FPS / rate + 180
            ):
                failure = "bag_player did not finish"
            elif player.proc.poll() is not None:
                failure = "bag_player failed"
            else:
                # The last frame is still in the node: wait until the outputs stop coming.
                _wait_quiet(client, f"{NAMESPACE}/panoptic/panoptic_map", quiet_s=3.0, timeout=120.0)
                client.wait_for(lambda: _node_diagnostics(client).get("latency_p50_ms", "nan") != "nan", 10.0)
                diagnostics = _node_diagnostics(client)
    finally:
        client.close()
        player_log = player.output if player is not None else ""
        if player is not None:
            player.stop()
        recorder_code = recorder.stop()
        node_code = node.stop()
        params_file.unlink(missing_ok=True)
        log = out / "node.log"
        log.write_text(
            f"--- perception_node ---\n{node.output}\n--- bag_recorder ---\n{recorder.output}\n"
            f"--- bag_player ---\n{player_log}"
        )
    if not failure and (recorder_code != 0 or node_code != 0):
        failure = f"a node exited with an error (perception_node {node_code}, bag_recorder {recorder_code})"
    if failure:
        raise SegPerceptionError(f"demo: {failure}; see {log}")
    return _report(out, bag, recorded, params, rate, diagnostics, time.monotonic() - started)


def _wait_quiet(client: GraphClient, topic: str, quiet_s: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = len(client.messages(topic))
        if n != count:
            count, since = n, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        time.sleep(0.1)


def _node_diagnostics(client: GraphClient) -> dict[str, str]:
    """Key/values of the perception node's latest summary status."""
    for msg in reversed(client.messages("/diagnostics")):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "frames_processed" in values:
                return values
    return {}


def _read_topics(bag: Path, topics: set[str]) -> dict[str, dict[int, Any]]:
    """{topic: {header stamp ns: message}}."""
    out: dict[str, dict[int, Any]] = {t: {} for t in topics}
    reader = bags.open_bag(bag)
    try:
        for conn, _, raw in bags.read_messages(reader, [c for c in reader.connections if c.topic in topics]):
            msg = bags.deserialize(raw, conn.msgtype)
            out[conn.topic][bags.stamp_ns(msg.header)] = msg
    finally:
        reader.close()
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(img)
    scale = out.shape[0] / 720
    cv2.rectangle(out, (0, 0), (int((14 * len(text) + 20) * scale), int(40 * scale)), (0, 0, 0), -1)
    cv2.putText(
        out,
        text,
        (int(10 * scale), int(29 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.9 * scale,
        (255, 255, 255),
        max(1, round(2 * scale)),
        cv2.LINE_AA,
    )
    return out


def _panels(camera: np.ndarray, overlays: dict[str, Any], title: str) -> list[np.ndarray]:
    blank = np.zeros_like(camera)
    panels = [_label(camera.copy(), title)]
    for topic in PANELS:
        msg = overlays.get(topic)
        panels.append(_label(to_rgb(decode_image(msg)).copy() if msg is not None else blank.copy(), topic))
    return panels


def _report(
    out: Path,
    bag: Path,
    recorded: Path,
    params: dict[str, Any],
    rate: float,
    diagnostics: dict[str, str],
    wall_s: float,
) -> int:
    outputs = _read_topics(recorded, {f"{NAMESPACE}/{t}" for t in PANELS})
    inputs = _read_topics(bag, {CAMERA_TOPIC})
    stamps = sorted(outputs[f"{NAMESPACE}/semantic/overlay"])
    if not stamps:
        print(f"demo: no outputs were recorded; see {out / 'node.log'}")
        return 1
    video_path = out / "overlays.mp4"
    width, height = FRAME_SIZE
    video = cv2.VideoWriter(str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (width, height))
    png_frames = set(np.linspace(0, len(stamps) - 1, min(4, len(stamps))).round().astype(int).tolist())
    pngs = []
    for i, stamp in enumerate(stamps):
        camera = to_rgb(decode_image(inputs[CAMERA_TOPIC][stamp]))
        panels = _panels(
            camera, {t: outputs[f"{NAMESPACE}/{t}"].get(stamp) for t in PANELS}, f"camera t={stamp / 1e9:.1f}"
        )
        grid = np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])
        video.write(cv2.cvtColor(cv2.resize(grid, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
        if i in png_frames:
            row = cv2.resize(np.hstack(panels), (2 * width, height // 2), interpolation=cv2.INTER_AREA)
            path = out / f"frame_{i:03d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
            pngs.append(path)
    video.release()

    metrics = evaluate_bags(recorded, bag)
    played = len(inputs[CAMERA_TOPIC])
    report: dict[str, Any] = {
        "frames_played": played,
        "frames_with_outputs": len(stamps),
        "rate": rate,
        "wall_s": round(wall_s, 1),
        "checkpoints": {
            m: params.get(f"{m}.checkpoint") or "untrained (no checkpoint configured)" for m in ("semantic", "instance")
        },
        "node_diagnostics": diagnostics,
        "metrics": metrics,
    }
    (out / "metrics.json").write_text(json.dumps(jsonable(report), indent=1) + "\n")
    md = [
        "# seg_perception demo",
        "",
        f"- drive: `{bag}` ({played} frames {width}x{height} at {FPS:g} Hz), played at {rate:g}x real time",
        "- graph: bag_player -> perception_node -> bag_recorder, separate processes over Fast DDS, use_sim_time",
        f"- frames with outputs: {len(stamps)} of {played}; the others were skipped by the node, which keeps only "
        "the newest frame when the camera outruns the models (this CPU runs both models at a few frames/s)",
        f"- node latency (publish - header stamp, on the bag's clock) p50 {diagnostics.get('latency_p50_ms', '?')} ms, "
        f"p95 {diagnostics.get('latency_p95_ms', '?')} ms (x{1 / rate:g} in wall time at this rate), from its "
        "last /diagnostics",
        *[f"- {m} checkpoint: {c}" for m, c in report["checkpoints"].items()],
        "",
        "```",
        format_report(metrics),
        "```",
    ]
    (out / "metrics.md").write_text("\n".join(md) + "\n")
    sem = metrics.get("semantic", {})
    print(
        f"demo: {len(stamps)} of {played} frames segmented; mIoU {100 * sem.get('mIoU', float('nan')):.1f} %, "
        f"pixel accuracy {100 * sem.get('pixel_accuracy', float('nan')):.1f} %"
        + (f", instance AP50 {100 * metrics['instance']['cityscapes']['AP50']:.1f} %" if "instance" in metrics else "")
        + (f", PQ {100 * metrics['panoptic']['All']['pq']:.1f} %" if "panoptic" in metrics else "")
    )
    if not params.get("instance.checkpoint"):
        print(
            "demo: NOTE no instance checkpoint is configured: instance and panoptic things are from untrained weights"
        )
    print(
        f"demo: wrote {video_path.name}, {len(pngs)} PNGs ({', '.join(p.name for p in pngs)}), metrics.json, "
        f"metrics.md, node.log and the recorded outputs_bag/ to {out}/"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`seg-perception demo` in this process: its options, its checks, its error boundary."""
    # The command's own parser (no description): `--help` here reads as `seg-perception demo --help`.
    parser = argparse.ArgumentParser(prog=f"{PROG} demo")
    add_demo_options(parser)
    args = parser.parse_args(argv)
    setup_logging()

    def demo() -> int:
        if not args.rate > 0:
            raise SegPerceptionError(f"--rate must be > 0, got {args.rate}")
        params = overrides.node_params("perception", args.config, args.param or ())
        return run_demo(Path(args.out), args.frames, args.seed, params, args.rate)

    return run_guarded(demo)


if __name__ == "__main__":
    raise SystemExit(main())
