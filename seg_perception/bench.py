"""Latency benchmark of the semantic core (the code the node runs, without DDS).

model only  = backend.run on a batch already at the model input size
end to end  = raw rgb8 message bytes -> decode -> resize -> model -> upsample -> output bytes,
              i.e. everything the node does between receiving a message and publishing.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from .config import SemanticModelConfig
from .image_conversion import decode_image, encode_image
from .pipeline.semantic import SemanticSegmenter


def _time(fn: Callable[[], object], iterations: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return np.asarray(samples) * 1e3


def _summary(ms: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, (50, 95, 99))
    return {"mean_ms": float(ms.mean()), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def fake_rgb8_message(width: int, height: int, seed: int = 0) -> SimpleNamespace:
    """An rgb8 Image-like message (the core decodes messages duck-typed)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return SimpleNamespace(
        encoding="rgb8", height=height, width=width, step=width * 3, is_bigendian=0, data=pixels.tobytes()
    )


def run_semantic_bench(
    params: dict[str, Any], width: int, height: int, iterations: int, warmup: int, json_path: str | None
) -> dict[str, Any]:
    config = SemanticModelConfig.from_params(params)
    segmenter = SemanticSegmenter.from_config(config)
    msg = fake_rgb8_message(width, height)
    batch = np.zeros((1, config.input_height, config.input_width, 3), np.uint8)

    def end_to_end() -> None:
        result = segmenter.segment([decode_image(msg)])[0]
        encode_image(result.class_map, "mono8")

    model_ms = _time(lambda: segmenter.backend.run(batch), iterations, warmup)
    e2e_ms = _time(end_to_end, iterations, warmup)
    report = {
        "model": config.model,
        "backend": segmenter.backend.name,
        "device": segmenter.backend.device,
        "precision": segmenter.backend.precision,
        "input_size": [config.input_width, config.input_height],
        "frame_size": [width, height],
        "iterations": iterations,
        "warmup": warmup,
        "model_only": _summary(model_ms),
        "end_to_end": _summary(e2e_ms),
        "overhead_ratio_p50": float(np.median(e2e_ms) / np.median(model_ms)),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
    }
    print(f"{config.model} {segmenter.backend.name}/{segmenter.backend.device}/{segmenter.backend.precision} "
          f"input {config.input_width}x{config.input_height}, frames {width}x{height} rgb8")
    for key in ("model_only", "end_to_end"):
        s = report[key]
        print(f"  {key:<11} p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms")
    print(f"  end-to-end / model-only (p50): {report['overhead_ratio_p50']:.3f}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
        print(f"  wrote {json_path}")
    return report
