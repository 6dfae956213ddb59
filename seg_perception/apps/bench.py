"""Latency and throughput of the cores, the way a node runs them (without DDS).

For each case (a model on one backend):

* **model only** = ``backend.run`` on a batch already at the model input size (for the
  instance model: ``InstanceSegmenter.detect``);
* **end to end** = everything a node does between receiving a message and publishing:
  ``sensor_msgs/Image`` rgb8 message -> :func:`decode_image` -> ``segment`` -> output
  ``sensor_msgs/Image`` messages built by :func:`seg_perception.io.image_messages.build_image_message` (the
  node's own functions; without ROS message packages, :func:`encode_image`);
* **throughput** = frames per second of the end-to-end loop, one camera, serial.

``compare=True`` adds the naive baseline on the same weights and the same message: a
cv_bridge-style copy of the message, numpy float pre-processing (float32 conversion,
per-channel normalisation, resize of the float image), the eager fp32 torchvision model
returning logits, bilinear upsampling of the logits to the full frame and argmax there, and
an output message built from ``tobytes()``.

The torch case runs where ``device`` says (``auto``: CUDA when torch sees a GPU); on CUDA it
is the GPU path (pinned upload, resize on the GPU, CUDA graphs; ``-p precision=fp16`` for
fp16): ``seg-perception bench --backends torch -p device=cuda -p precision=fp16``. Every call
waits for its results, so the timings are complete latencies.

Cases are timed in interleaved blocks of a few iterations (see :func:`run_cases`), so load
from other processes hits all cases alike and the ratios stay meaningful on a shared
machine. Warm-up runs are excluded. DDS transport is measured by ``python -m seg_perception.ros.tools.latency_bench``.
"""

from __future__ import annotations

import array
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_perception.apps.timing import (
    Case,
    _output_encoder,
    _ros_messages,
    camera_message,
    machine,
    run_cases,
    write_report,
)
from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig
from seg_perception.io.image import decode_image
from seg_perception.pipeline.semantic import SemanticSegmenter

SEMANTIC_BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
BENCH_DIR = Path("out/bench")  # exported graphs the bench makes for itself (git-ignored)


# ----------------------------------------------------------------------------- messages

# ----------------------------------------------------------------------------- timing

# ----------------------------------------------------------------------------- cases


def _semantic_segmenter(config: SemanticModelConfig, spec: str, int8_onnx: str | None) -> SemanticSegmenter:
    """The segmenter of one backend spec: torch, onnxruntime (fp32) or onnxruntime-int8."""
    from seg_perception.errors import BackendError
    from seg_perception.inference.artifacts import artifact_paths, onnx_metadata_matches
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend
    from seg_perception.labels import load_label_set
    from seg_perception.pipeline.semantic import _build_checked

    if spec == "torch":
        # On CUDA this is the GPU path (torch_runner): fp16 when asked for, else fp32.
        from seg_perception.inference.registry import resolve_device

        on_cuda = resolve_device(config.device).startswith("cuda")
        precision = "fp16" if on_cuda and config.precision == "fp16" else "fp32"
        return SemanticSegmenter.from_config(replace(config, backend="torch", precision=precision))
    if spec not in ("onnxruntime", "onnxruntime-int8"):
        raise BackendError(f"unknown bench backend {spec!r}; expected one of {list(SEMANTIC_BACKENDS)}")
    precision = "int8" if spec == "onnxruntime-int8" else "fp32"
    size = (config.input_height, config.input_width)
    # An exported graph in engines_dir is used as is; otherwise the bench works in out/bench,
    # never writing into engines_dir (where `backend: auto` would start picking it up).
    shipped = artifact_paths(config.engines_dir, config.model, size, precision)[0]
    path = Path(int8_onnx) if int8_onnx and precision == "int8" else shipped
    if not path.is_file():
        path = BENCH_DIR / shipped.name
    labels = load_label_set(config.labels)
    model = _build_checked(config, labels)
    if precision == "int8":
        if not path.is_file():
            raise BackendError(
                f"no int8 ONNX at {shipped} or {path}: seg-perception export --precision int8 --calib FRAMES "
                f"--int8-high-precision fp32 --out {path} (or pass --int8-onnx)"
            )
        reason = onnx_metadata_matches(path, model, "int8")
        if reason is not None:
            raise BackendError(f"{path} does not hold this config's weights: {reason}")
        backend = OnnxRuntimeSemanticBackend(path, "cpu", "int8")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = OnnxRuntimeSemanticBackend.from_model(model, "cpu", "fp32", size, path)  # weights checked
    return SemanticSegmenter(replace(config, backend="onnxruntime", precision=precision), backend, labels)


def semantic_case(segmenter: SemanticSegmenter, msg: Any, confidence: bool) -> Case:
    from seg_perception.pipeline.preprocess import resize_batch

    encode = _output_encoder()
    batch = resize_batch([decode_image(msg)], segmenter.input_size).copy()  # the real frame, at model size

    def end_to_end() -> list[Any]:
        result = segmenter.segment([decode_image(msg)], with_confidence=confidence)[0]
        out = [encode(result.class_map, msg.header, "mono8")]
        if result.confidence is not None:
            out.append(encode(result.confidence, msg.header, "mono8"))
        return out

    backend, cfg = segmenter.backend, segmenter.config
    return Case(
        f"{cfg.model} {backend.name} {backend.precision}",
        _case_info(cfg, backend),
        lambda: backend.run(batch, with_confidence=confidence),
        end_to_end,
    )


def naive_case(config: SemanticModelConfig, msg: Any) -> tuple[Case, Callable[[], np.ndarray]]:
    """The naive baseline on the same weights; also returns a function giving its class map."""
    import cv2
    from torch.nn import functional

    from seg_perception.labels import load_label_set
    from seg_perception.models.semantic import IMAGENET_MEAN, IMAGENET_STD
    from seg_perception.pipeline.semantic import _build_checked

    model = _build_checked(config, load_label_set(config.labels)).eval()
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    size = (config.input_width, config.input_height)
    ros = _ros_messages()

    def to_tensor() -> tuple[torch.Tensor, int, int]:
        h, w = int(msg.height), int(msg.width)
        img = np.frombuffer(msg.data, np.uint8).reshape(h, w, 3).copy()  # cv_bridge imgmsg_to_cv2
        x: np.ndarray = img.astype(np.float32) / 255.0
        x = (x - mean) / std  # per-channel normalisation in numpy
        x = cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)  # resize of the float image
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None], h, w

    small, _, _ = to_tensor()

    def model_only() -> torch.Tensor:
        with torch.no_grad():
            logits: torch.Tensor = model(small)["out"]
            return logits

    def class_map() -> np.ndarray:
        x, h, w = to_tensor()
        with torch.no_grad():
            logits = model(x)["out"]
            full = functional.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            return full.argmax(1)[0].numpy().astype(np.uint8)

    def end_to_end() -> Any:
        classes = class_map()
        if ros is None:
            return classes.tobytes()
        image_cls = ros[0]
        out = image_cls(
            header=msg.header,
            encoding="mono8",
            height=classes.shape[0],
            width=classes.shape[1],
            step=classes.shape[1],
            is_bigendian=0,
        )
        out.data = array.array("B", classes.tobytes())  # cv_bridge cv2_to_imgmsg
        return out

    info = {
        "model": config.model,
        "backend": "naive torch eager",
        "device": "cpu",
        "precision": "fp32",
        "input_size": [config.input_width, config.input_height],
        "checkpoint": config.checkpoint or "untrained",
    }
    return Case("naive baseline (torch eager, numpy pre/post)", info, model_only, end_to_end), class_map


def instance_case(params: dict[str, Any], msg: Any) -> Case:
    from seg_perception.pipeline.factory import instance_from_config
    from seg_perception.pipeline.preprocess import resize_batch

    config = InstanceModelConfig.from_params(params)
    segmenter = instance_from_config(config)
    encode = _output_encoder()
    batch = resize_batch([decode_image(msg)], segmenter.input_size).copy()

    def end_to_end() -> Any:
        result = segmenter.segment([decode_image(msg)])[0]
        return encode(result.instance_map, msg.header, "mono16")

    backend = segmenter.backend  # backend auto: the ONNX Runtime split where exported, else torch
    info = _case_info(config, backend)
    return Case(f"{config.model} {backend.name} {backend.precision}", info, lambda: segmenter.detect(batch), end_to_end)


def _case_info(config: SemanticModelConfig | InstanceModelConfig, backend: Any) -> dict[str, Any]:
    """What a case ran: model, backend, device, precision, input size (W, H), checkpoint."""
    return {
        "model": config.model,
        "backend": backend.name,
        "device": backend.device,
        "precision": backend.precision,
        "input_size": [config.input_width, config.input_height],
        "checkpoint": config.checkpoint or "untrained",
    }


# ----------------------------------------------------------------------------- command


def run_bench(
    params: dict[str, Any],
    width: int = 1920,
    height: int = 1080,
    iterations: int = 20,
    warmup: int = 3,
    json_path: str | None = None,
    *,
    backends: Sequence[str] = SEMANTIC_BACKENDS,
    compare: bool = False,
    instance_params: dict[str, Any] | None = None,
    int8_onnx: str | None = None,
    confidence: bool = False,
) -> dict[str, Any]:
    """Benchmark the semantic core on ``backends`` (and the instance core with
    ``instance_params``) at ``width`` x ``height`` rgb8 frames; print a table, write JSON."""
    from seg_perception.errors import ConfigError, SegPerceptionError
    from seg_perception.synthetic.frames import generate_frame

    # The command line refuses these already (apps/cli_common.py); library callers get one line too.
    if iterations <= 0 or warmup < 0 or width <= 0 or height <= 0:
        raise ConfigError(
            f"bench needs iterations > 0, warmup >= 0 and a positive frame size, got iterations={iterations} "
            f"warmup={warmup} size={width}x{height}"
        )
    load_start = os.getloadavg()
    config = SemanticModelConfig.from_params(params)
    msg = camera_message(generate_frame(0, 0, width, height, "day").image)
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    semantic: dict[str, SemanticSegmenter] = {}
    for spec in backends:
        try:
            semantic[spec] = _semantic_segmenter(config, spec, int8_onnx)
        except (SegPerceptionError, ImportError) as err:
            skipped[spec] = str(err)
            print(f"skipping {spec}: {err}")
            continue
        cases.append(semantic_case(semantic[spec], msg, confidence))
    naive_map = None
    if compare:
        naive, naive_map = naive_case(config, msg)
        cases.append(naive)
    if instance_params is not None:
        try:
            cases.append(instance_case(instance_params, msg))
        except (SegPerceptionError, ImportError) as err:
            skipped["instance"] = str(err)
            print(f"skipping instance: {err}")
    if not cases:
        raise SegPerceptionError("nothing to benchmark: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    t0 = time.monotonic()
    run_cases(cases, iterations, warmup)
    rows = [case.report() for case in cases]
    report: dict[str, Any] = {
        "frame": {"width": width, "height": height, "encoding": "rgb8", "content": "synthetic road scene"},
        "iterations": iterations,
        "warmup": warmup,
        "with_confidence": confidence,
        "output_messages": "sensor_msgs/Image via io.image_messages.build_image_message"
        if _ros_messages()
        else "encode_image",
        "rows": rows,
        "skipped": skipped,
        "wall_s": time.monotonic() - t0,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "machine": machine(),
    }
    if compare and naive_map is not None:
        report["compare"] = _compare(rows, semantic, msg, naive_map)
    _print(report)
    if json_path:
        write_report(report, json_path)
    return report


def _compare(
    rows: list[dict[str, Any]], semantic: dict[str, SemanticSegmenter], msg: Any, naive_map: Callable[[], np.ndarray]
) -> dict[str, Any]:
    naive = next(r for r in rows if r["backend"] == "naive torch eager")
    reference = naive_map()
    out: dict[str, Any] = {}
    for row in rows:
        if row is naive or row["name"] not in {
            f"{s.config.model} {s.backend.name} {s.backend.precision}" for s in semantic.values()
        }:
            continue
        seg = next(
            s for s in semantic.values() if row["name"] == f"{s.config.model} {s.backend.name} {s.backend.precision}"
        )
        ours = seg.segment([decode_image(msg)])[0].class_map
        out[row["name"]] = {
            "end_to_end_p50_speedup": naive["end_to_end"]["p50_ms"] / row["end_to_end"]["p50_ms"],
            "end_to_end_p99_speedup": naive["end_to_end"]["p99_ms"] / row["end_to_end"]["p99_ms"],
            "model_only_p50_speedup": naive["model_only"]["p50_ms"] / row["model_only"]["p50_ms"],
            "throughput_ratio": row["throughput_fps"] / naive["throughput_fps"],
            "class_map_agreement_with_naive": float((ours == reference).mean()),
        }
    return out


def _print(report: dict[str, Any]) -> None:
    frame, load = report["frame"], report["load_average"]
    print(
        f"\nframes {frame['width']}x{frame['height']} rgb8, {report['iterations']} iterations after "
        f"{report['warmup']} warm-up (blocks of 5, interleaved), load average {load['start'][0]:.2f} -> "
        f"{load['end'][0]:.2f}"
    )
    columns = ("model only p50/p95/p99 ms", "end to end p50/p95/p99 ms")
    head = f"{'case':<52} {'input':>9}  {columns[0]:>26}  {columns[1]:>26}  {'e2e/model':>9}  {'fps':>6}"
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        m, e = r["model_only"], r["end_to_end"]
        size = f"{r['input_size'][0]}x{r['input_size'][1]}"
        print(
            f"{r['name']:<52} {size:>9}  {m['p50_ms']:8.1f} {m['p95_ms']:8.1f} {m['p99_ms']:8.1f}  "
            f"{e['p50_ms']:8.1f} {e['p95_ms']:8.1f} {e['p99_ms']:8.1f}  {r['overhead_ratio_p50']:9.3f}  "
            f"{r['throughput_fps']:6.2f}"
        )
    for name, c in report.get("compare", {}).items():
        print(
            f"vs naive: {name}: end to end p50 {c['end_to_end_p50_speedup']:.2f}x faster, "
            f"p99 {c['end_to_end_p99_speedup']:.2f}x, model only {c['model_only_p50_speedup']:.2f}x, "
            f"throughput {c['throughput_ratio']:.2f}x; class maps agree on "
            f"{100 * c['class_map_agreement_with_naive']:.2f} % of pixels"
        )
