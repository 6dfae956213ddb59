"""`seg-perception demo`: a synthetic drive through the live ROS 2 graph.

A camera publisher (this process) sends the frames of a generated drive over DDS to the real
``semantic_segmentation_node`` executable running in its own process; the outputs that come
back over DDS are written as side-by-side PNGs (camera | semantic overlay | ground truth),
and a metrics report (mIoU against the generated ground truth, latency) as JSON and Markdown.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from sensor_msgs.msg import Image

from ..evaluation import confusion_matrix, summarize
from ..labels import load_label_set
from ..synthetic import generate_drive
from .harness import GraphClient, NodeProcess, find_message
from .messages import image_msg

NAMESPACE = "/demo/camera"
FRAME_SIZE = (1280, 720)  # width, height of the simulated camera


def _isolate_graph() -> None:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(40, 99)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from .runner import use_large_image_profile

    use_large_image_profile()


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (12 * len(text) + 16, 34), (0, 0, 0), -1)
    cv2.putText(out, text, (8, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def run_demo(out: Path, frames: int, seed: int, params: dict[str, Any]) -> int:
    _isolate_graph()
    out.mkdir(parents=True, exist_ok=True)
    labels = load_label_set(str(params["labels"]))
    palette = labels.palette()
    width, height = FRAME_SIZE
    print(f"demo: generating a {frames}-frame synthetic drive ({width}x{height}, seed {seed})")
    drive = list(generate_drive(seed, frames, width=width, height=height))

    params_file = Path(tempfile.mkstemp(prefix="seg_demo_", suffix=".yaml")[1])
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    print("demo: starting semantic_segmentation_node (own process) and a camera publisher over DDS")
    node = NodeProcess("seg_perception.ros.semantic_node", NAMESPACE, {}, str(params_file))
    client = GraphClient("demo_camera")
    conf = np.zeros((labels.num_classes, labels.num_classes), np.int64)
    latencies_ms: list[float] = []
    written: list[Path] = []
    try:
        client.subscribe(Image, f"{NAMESPACE}/semantic/class_map")
        client.subscribe(Image, f"{NAMESPACE}/semantic/overlay")
        pub = client.publisher(Image, f"{NAMESPACE}/image")
        if not client.wait_for(lambda: pub.get_subscription_count() > 0 or node.proc.poll() is not None, 120):
            raise RuntimeError("the node did not subscribe within 120 s")
        if node.proc.poll() is not None:
            raise RuntimeError(f"the node exited at start-up:\n{node.output}")
        for i, frame in enumerate(drive):
            msg = image_msg(frame.image, client.now_msg_header(f"camera_front"), "rgb8")
            sent = time.monotonic()
            got = None
            while got is None and time.monotonic() - sent < 120:
                pub.publish(msg)  # best-effort input: re-send until the outputs come back
                client.wait_for(lambda: find_message(client.messages(f"{NAMESPACE}/semantic/overlay"), msg.header.stamp) is not None, 5.0)
                got = find_message(client.messages(f"{NAMESPACE}/semantic/class_map"), msg.header.stamp)
            overlay = find_message(client.messages(f"{NAMESPACE}/semantic/overlay"), msg.header.stamp)
            if got is None or overlay is None:
                raise RuntimeError(f"no output for frame {i} within 120 s:\n{node.output[-2000:]}")
            latencies_ms.append((time.monotonic() - sent) * 1e3)
            class_map = np.frombuffer(bytes(got.data), np.uint8).reshape(got.height, got.step)[:, : got.width]
            conf += confusion_matrix(class_map, frame.train_ids, labels.num_classes)
            over = np.frombuffer(bytes(overlay.data), np.uint8).reshape(overlay.height, overlay.step)[:, : overlay.width * 3]
            over = over.reshape(overlay.height, overlay.width, 3)
            panel = np.hstack([
                _label(frame.image, f"camera #{i} ({frame.condition})"),
                _label(over, "semantic/overlay (from the node)"),
                _label(palette[frame.train_ids], "ground truth"),
            ])
            path = out / f"frame_{i:03d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(panel, (panel.shape[1] // 2, panel.shape[0] // 2)), cv2.COLOR_RGB2BGR))
            written.append(path)
            print(f"demo: frame {i + 1}/{len(drive)} -> {path.name}  ({latencies_ms[-1]:.0f} ms round trip)")
    finally:
        client.close()
        code = node.stop()
        params_file.unlink(missing_ok=True)
    (out / "node.log").write_text(node.output)
    metrics = summarize(conf, labels.class_names)
    report = {
        "frames": len(drive),
        "frame_size": [width, height],
        "checkpoint": params.get("checkpoint") or "untrained (no checkpoint configured)",
        "model": params["model"],
        "input_size": [params["input_width"], params["input_height"]],
        "round_trip_latency_ms": {"p50": float(np.percentile(latencies_ms, 50)), "max": float(max(latencies_ms))},
        "node_exit_code": code,
        **metrics,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    md = [
        "# seg_perception demo",
        "",
        f"- model: {report['model']} ({report['checkpoint']}), input {params['input_width']}x{params['input_height']}",
        f"- {len(drive)} frames {width}x{height} rgb8 over DDS; round trip p50 {report['round_trip_latency_ms']['p50']:.0f} ms",
        f"- mIoU {metrics['mIoU'] * 100:.1f} %, pixel accuracy {metrics['pixel_accuracy'] * 100:.1f} %",
        "",
        "| class | IoU % |",
        "|---|---|",
        *[f"| {k} | {'-' if v is None else f'{v * 100:.1f}'} |" for k, v in metrics["iou"].items()],
    ]
    (out / "metrics.md").write_text("\n".join(md) + "\n")
    print(f"demo: mIoU {metrics['mIoU'] * 100:.1f} %, pixel accuracy {metrics['pixel_accuracy'] * 100:.1f} % over {len(drive)} frames")
    if not params.get("checkpoint"):
        print("demo: NOTE the model has no trained checkpoint configured, so these numbers are chance level")
    print(f"demo: wrote {len(written)} side-by-side PNGs, metrics.json, metrics.md and node.log to {out}/")
    return 0 if code == 0 else 1
