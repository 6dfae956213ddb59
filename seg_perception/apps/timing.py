"""Timing primitives the benchmarks share: test messages as a node receives them, the node's
output encoder, cases timed in interleaved blocks, percentile summaries, the machine
description and the JSON report.
"""

from __future__ import annotations

import array
import functools
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from seg_perception.io.image_encode import encode_image
from seg_perception.io.image_messages import build_image_message


def _ros_messages() -> tuple[Any, Any, Any] | None:
    """(Image, Header, image_msg) where the ROS message packages are importable, else None:
    the node's output path (:func:`build_image_message` with sensor_msgs' Image class)."""
    try:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header
    except ImportError:
        return None
    return Image, Header, functools.partial(build_image_message, Image)


def camera_message(pixels: np.ndarray, frame_id: str = "camera") -> Any:
    """An rgb8 ``sensor_msgs/Image`` as a subscription callback receives it (``data`` an
    ``array.array('B')``), or a duck-typed stand-in without ROS."""
    height, width = pixels.shape[:2]
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels).tobytes())
    ros = _ros_messages()
    if ros is None:
        header = SimpleNamespace(frame_id=frame_id, stamp=SimpleNamespace(sec=0, nanosec=0))
        return SimpleNamespace(
            header=header, encoding="rgb8", height=height, width=width, step=width * 3, is_bigendian=0, data=data
        )
    image_cls, header_cls, _ = ros
    return image_cls(
        header=header_cls(frame_id=frame_id),
        encoding="rgb8",
        height=height,
        width=width,
        step=width * 3,
        is_bigendian=0,
        data=data,
    )


def _output_encoder() -> Callable[[np.ndarray, Any, str], Any]:
    """How the node turns an output array into a message: ``image_msg`` (or encode_image)."""
    ros = _ros_messages()
    if ros is not None:
        encoder: Callable[[np.ndarray, Any, str], Any] = ros[2]
        return encoder
    return lambda pixels, header, encoding: encode_image(pixels, encoding)


def _summary(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, (50, 95, 99))
    return {
        "mean_ms": float(a.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


@dataclass
class Case:
    """One row of the table: a model-only and an end-to-end function, timed interleaved."""

    name: str
    info: dict[str, Any]
    model_only: Callable[[], object]
    end_to_end: Callable[[], object]
    samples: dict[str, list[float]] = field(default_factory=lambda: {"model_only": [], "end_to_end": []})

    def report(self) -> dict[str, Any]:
        model, e2e = _summary(self.samples["model_only"]), _summary(self.samples["end_to_end"])
        return {
            "name": self.name,
            **self.info,
            "model_only": model,
            "end_to_end": e2e,
            "throughput_fps": 1000.0 / e2e["mean_ms"],
            "overhead_ratio_p50": e2e["p50_ms"] / model["p50_ms"],
        }


def run_cases(cases: Sequence[Case], iterations: int, warmup: int, block: int = 5) -> None:
    """Warm every case up, then time ``iterations`` of each, in blocks of ``block``
    iterations taken case after case (model only and end to end alternate within a block).

    Blocks keep the comparison fair on a shared machine (load from other processes hits
    every case alike) without letting one backend's thread pool disturb another's: torch
    (OpenMP) and ONNX Runtime threads spin for a while after their work, so each block
    starts with one untimed run that lets the previous case's threads go to sleep.
    """
    for case in cases:
        for _ in range(warmup):
            case.model_only()
            case.end_to_end()
    done = 0
    while done < iterations:
        n = min(block, iterations - done)
        for case in cases:
            case.end_to_end()  # untimed: settles the thread pools after the previous case
            for _ in range(n):
                for key in ("model_only", "end_to_end"):
                    fn = getattr(case, key)
                    t0 = time.perf_counter()
                    fn()
                    case.samples[key].append((time.perf_counter() - t0) * 1e3)
        done += n


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """A benchmark's JSON report at ``path`` (folders made), and one line saying where."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU, torch threads, versions, GPU."""
    return {
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
