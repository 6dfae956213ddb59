"""``make gpu-check``: everything only a GPU can prove, in one command, one report.

``python -m seg_perception.apps.gpu_check [--out DIR] [--budget-s S] [--no-gpu]``

Steps, each timed, each passed / failed / skipped with the reason:

1. ``environment``: GPU, driver, CUDA, torch, torchvision, ONNX Runtime, TensorRT libraries;
2. ``cuda_tests``: the test suite's CUDA-only tests (``pytest -k cuda``);
3. ``bench``: the semantic and instance cores on CUDA, fp32 and fp16, batches of 1 and 4
   (``seg-perception bench``'s own cases at batch 1, then a batch-4 loop);
4. ``tensorrt``: where a TensorRT library loads and can run on this GPU: semantic and
   instance engines exported, built, run, and compared with torch;
5. ``switch_over``: a segmenter under ``engine_policy: build_in_background`` serving while
   its engine builds in a child process, then switching to it.

Without a GPU (or with ``--no-gpu``) it runs its own plumbing instead: the environment, the
bench code on the CPU at a small size, the report; every GPU step says plainly that it was
skipped and why. ``make test`` runs it that way, so the script cannot rot unnoticed.
Writes ``report.json`` and ``report.md`` under ``--out``; exit 1 when a step failed.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_perception.config.overrides import node_params
from seg_perception.config.records import SemanticModelConfig
from seg_perception.io.image import ColorOrder, DecodedImage
from seg_perception.resources import import_root

# No step or part of one starts after this many seconds, so the whole check stays under 8
# minutes on a fresh GPU machine; what did not start is reported as skipped.
BUDGET_S = 360
GPU_SIZE, CPU_SIZE = (256, 512), (64, 128)  # model input (H, W)


@dataclass
class Step:
    name: str
    status: str = "skipped"  # passed | failed | skipped
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


class SkipStepError(Exception):
    """A step that cannot run here; the message says why."""


class Check:
    def __init__(self, out: Path, gpu: bool, budget_s: float) -> None:
        self.out, self.gpu, self.deadline = out, gpu, time.monotonic() + budget_s
        self.steps: list[Step] = []
        self.work = out / "work"

    def step(self, name: str, run: Callable[[Step], None], *, needs_gpu: bool = False) -> Step:
        step = Step(name)
        self.steps.append(step)
        if needs_gpu and not self.gpu:
            step.detail = "no CUDA GPU here: " + _no_gpu_reason()
        elif time.monotonic() > self.deadline:
            step.detail = "time budget spent by the steps before"
        else:
            started = time.monotonic()
            try:
                run(step)
                step.status = "passed"
            except SkipStepError as why:
                step.status, step.detail = "skipped", str(why)
            except Exception as err:
                # Broad on purpose: the check's boundary: every failure becomes one report line.
                step.status, step.detail = "failed", f"{type(err).__name__}: {err}"
                step.data["traceback"] = traceback.format_exc(limit=8)
            step.seconds = round(time.monotonic() - started, 1)
        print(f"[gpu-check] {name}: {step.status} ({step.seconds:.1f} s) {step.detail}", flush=True)
        return step


def _no_gpu_reason() -> str:
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA GPU"
    return "--no-gpu given"


# ----------------------------------------------------------------------------- steps
def environment(step: Step, gpu: bool) -> None:
    data: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    for module in ("torchvision", "onnxruntime", "tensorrt", "tensorrt_rtx", "modelopt"):
        try:
            data[module] = str(getattr(importlib.import_module(module), "__version__", "installed"))
        except Exception as err:
            # Broad on purpose: a library that fails to load is reported, whatever it raises.
            data[module] = f"not usable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if "not usable" not in data["onnxruntime"]:
        data["onnxruntime_providers"] = importlib.import_module("onnxruntime").get_available_providers()
    if gpu:
        data["cudnn"] = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]  # unannotated in torch
        data["gpus"] = [
            {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "cc": "{}.{}".format(*torch.cuda.get_device_capability(i)),
            }
            for i in range(torch.cuda.device_count())
        ]
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            data["driver"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            data["driver"] = f"nvidia-smi unavailable ({err})"
    step.data.update(data)
    step.detail = ", ".join(f"{g['name']} ({g['cc']})" for g in data.get("gpus", [])) or "no GPU"


def cuda_tests(step: Step, out: Path, budget_s: float) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "not ros", "-k", "cuda", "-p", "no:cacheprovider"]
    cmd += ["test/inference", "test/export", "test/pipeline", f"--junitxml={out / 'cuda_tests.xml'}"]
    proc = subprocess.run(cmd, cwd=import_root(), capture_output=True, text=True, timeout=max(60.0, budget_s))
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-300:]]
    step.data.update(command=" ".join(cmd[2:]), returncode=proc.returncode, summary=tail[0], output=proc.stdout[-4000:])
    step.detail = tail[0]
    if proc.returncode not in (0, 5):  # 5: nothing collected
        raise AssertionError(f"CUDA-only tests failed: {tail[0]}")


def _frames(size: tuple[int, int], count: int) -> list[DecodedImage]:
    from seg_perception.synthetic.frames import generate_frame

    return [DecodedImage(generate_frame(7, i, size[1], size[0]).image, ColorOrder.RGB) for i in range(count)]


def _latency(run: Callable[[], object], iterations: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def bench(step: Step, gpu: bool, out: Path) -> None:
    """``bench``'s cases at batch 1 (its own code), then batches of 4 through ``segment``."""
    from seg_perception.apps.bench import run_bench
    from seg_perception.pipeline.factory import instance_from_config, semantic_from_config

    device, size = ("cuda", GPU_SIZE) if gpu else ("cpu", CPU_SIZE)
    frame = (1080, 1920) if gpu else (120, 160)
    iterations, warmup = (20, 3) if gpu else (1, 0)
    common = {"device": device, "input_height": size[0], "input_width": size[1]}
    instance = {**node_params("instance"), **common, "backend": "torch"}
    rows: list[dict[str, Any]] = []
    for precision in ("fp32", "fp16") if gpu else ("fp32",):
        semantic = {**node_params("semantic"), **common, "precision": precision, "engine_policy": "never"}
        report = run_bench(
            semantic,
            frame[1],
            frame[0],
            iterations,
            warmup,
            str(out / f"bench_{precision}.json"),
            backends=("torch",),
            instance_params=instance if precision == "fp32" else None,  # the torch instance backend is fp32 only
        )
        rows += [{**r, "batch": 1} for r in report["rows"]]
        step.data.setdefault("skipped", {}).update(report["skipped"])
        seg = semantic_from_config(SemanticModelConfig.from_params(semantic))
        images = _frames(frame, 4)
        rows.append(
            {
                "name": f"semantic torch {precision}",
                "batch": 4,
                **_latency(functools.partial(seg.segment, images), iterations, warmup),
            }
        )
    inst = instance_from_config(_instance_config(instance))
    images = _frames(frame, 4)
    rows.append(
        {"name": "instance torch fp32", "batch": 4, **_latency(lambda: inst.segment(images), iterations, warmup)}
    )
    step.data["rows"] = rows
    step.detail = f"{len(rows)} cases on {device}" + ("" if gpu else " (plumbing: 1 iteration at a small size)")


def _instance_config(params: dict[str, Any]) -> Any:
    from seg_perception.config.records import InstanceModelConfig

    return InstanceModelConfig.from_params(params)


def _runtime_or_skip(device: str = "cuda") -> None:
    from seg_perception.inference.engine_policy import tensorrt_runtime_problem

    problem = tensorrt_runtime_problem(device)
    if problem is not None:
        raise SkipStepError(f"no TensorRT runtime usable here: {problem}")


def tensorrt(step: Step, work: Path, deadline: float) -> None:
    """Export, build and run the semantic engine (fp32, and fp16 where ModelOpt is installed)
    and the instance split engines (fp32); agreement with torch on CUDA."""
    _runtime_or_skip()
    from seg_perception.export.engine_build import build_engine, build_instance_engines
    from seg_perception.export.instance import export_instance_onnx
    from seg_perception.export.instance_check import MATCH_GATES, eager_detect, match_detections, scene_frames
    from seg_perception.export.onnx import class_agreement, export_semantic_onnx, verification_frames
    from seg_perception.inference.artifacts import artifact_paths
    from seg_perception.inference.instance_split import instance_artifact_paths
    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend
    from seg_perception.inference.tensorrt_instance import TensorRTInstanceBackend
    from seg_perception.inference.torch_backend import TorchSemanticBackend
    from seg_perception.labels import load_label_set
    from seg_perception.models.semantic import build_semantic_model
    from seg_perception.pipeline.instance import InstanceSegmenter

    targets = _rtx_targets()
    cfg = SemanticModelConfig.from_params(
        {**node_params("semantic"), "input_height": GPU_SIZE[0], "input_width": GPU_SIZE[1]}
    )
    labels = load_label_set(cfg.labels)
    model, _ = build_semantic_model(cfg.model, labels.num_classes, cfg.checkpoint or None)
    frames = verification_frames(GPU_SIZE, 4, seed=77)
    reference = TorchSemanticBackend(model, "cuda", "fp32", cuda_graphs=False).run(frames).class_ids
    precisions = ["fp32"] + (["fp16"] if importlib.util.find_spec("modelopt") else [])
    for precision in precisions:
        if time.monotonic() > deadline:
            step.data[f"semantic_{precision}"] = {"skipped": "time budget spent"}
            continue
        onnx, engine = artifact_paths(work, cfg.model, GPU_SIZE, precision)
        calib = verification_frames(GPU_SIZE, 8, seed=5) if precision != "fp32" else None
        export_semantic_onnx(model.cpu(), onnx, GPU_SIZE, precision, calib, max_batch=4)
        side = build_engine(onnx, engine, precision, max_batch=4, rtx_targets=targets)
        backend = TensorRTSemanticBackend(engine, "cuda", precision, onnx)
        agreement = class_agreement(backend.run(frames).class_ids, reference)
        gate = 0.99 if precision == "fp32" else 0.97
        step.data[f"semantic_{precision}"] = {
            "library": f"{side['library']} {side['library_version']}",
            "build_s": side["build_seconds"],
            "agreement_vs_torch_fp32": round(agreement, 5),
            "batch1": _latency(functools.partial(backend.run, frames[:1]), 20, 3),
            "batch4": _latency(functools.partial(backend.run, frames), 20, 3),
        }
        if agreement < gate:
            raise AssertionError(f"semantic {precision} engine agrees with torch on {agreement:.2%} < {gate:.0%}")
    if time.monotonic() > deadline:
        step.data["instance_fp32"] = {"skipped": "time budget spent"}
        step.detail = _tensorrt_summary(step.data)
        return
    params = node_params("instance")
    inst = InstanceSegmenter.build(params["model"], params["labels"], params["checkpoint"] or None, GPU_SIZE)
    files = instance_artifact_paths(work, params["model"], GPU_SIZE, "fp32")
    onnx_paths = {p: o for p, (o, _) in files.items()}
    engines = {p: e for p, (_, e) in files.items()}
    export_instance_onnx(inst.model, onnx_paths, GPU_SIZE, "fp32", arch=params["model"])
    build_instance_engines(onnx_paths, engines, "fp32", max_batch=4, rtx_targets=targets)
    scenes = scene_frames(GPU_SIZE, 4, seed=40_000)
    want = eager_detect(inst.model, scenes)
    trt = TensorRTInstanceBackend(inst.model.to("cuda"), engines, GPU_SIZE, "fp32", "cuda", onnx_paths)
    report = match_detections(want, trt.detect(scenes), MATCH_GATES["fp32"])
    step.data["instance_fp32"] = {"match": str(report), "batch4": _latency(lambda: trt.detect(scenes), 10, 2)}
    if report.fraction < MATCH_GATES["fp32"].fraction:
        raise AssertionError(f"instance engines vs torch: {report}")
    step.detail = _tensorrt_summary(step.data)


def _tensorrt_summary(data: dict[str, Any]) -> str:
    keys = ("agreement_vs_torch_fp32", "match", "skipped")
    return "; ".join(f"{k}: {next((v[x] for x in keys if x in v), '?')}" for k, v in data.items())


def _rtx_targets() -> list[str]:
    """TensorRT-RTX builds for this GPU's compute capability (its default leaves Turing out)."""
    from seg_perception.inference.tensorrt_library import current_gpu, import_tensorrt

    gpu = current_gpu()
    return [gpu.cc] if import_tensorrt().is_rtx and gpu is not None else []


def switch_over(step: Step, work: Path, timeout_s: float) -> None:
    """build_in_background for real: served on the fallback while the child builds, then on
    the engine (the child builds with the library defaults: TensorRT for this GPU)."""
    _runtime_or_skip()
    from seg_perception.pipeline.semantic import SemanticSegmenter

    if _rtx_targets() and _rtx_targets()[0] == "7.5":
        raise SkipStepError("TensorRT-RTX's default targets leave Turing out; the background build uses them")
    params = {**node_params("semantic"), "input_height": GPU_SIZE[0], "input_width": GPU_SIZE[1]}
    params.update(device="cuda", backend="auto", engine_policy="build_in_background", engines_dir=str(work / "switch"))
    seg = SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))
    fallback = seg.backend.name
    images = _frames((720, 1280), 1)
    before = seg.segment(images)[0].class_map
    build = seg.start_engine_build()
    served, started = 0, time.monotonic()
    try:
        while build is not None and not build.wait(0.05) and time.monotonic() - started < timeout_s:
            seg.segment(images)
            served += 1
        after = seg.segment(images)[0].class_map
    finally:
        seg.close()
    step.data.update(
        fallback=fallback, served_during_build=served, status=seg.engine_status(), backend=seg.backend.name
    )
    if seg.backend.name != "tensorrt":
        raise AssertionError(f"no switch to the engine: {seg.engine_status()}")
    agreement = float((after == before).mean())
    step.data["agreement_with_fallback"] = round(agreement, 5)
    took = time.monotonic() - started
    step.detail = f"{fallback} -> tensorrt after {took:.0f} s, {served} batches meanwhile, agreement {agreement:.2%}"
    if agreement < 0.98:
        raise AssertionError(f"the engine's class map agrees with the fallback's on {agreement:.2%} only")


# ----------------------------------------------------------------------------- report
def write_reports(check: Check) -> dict[str, Any]:
    report = {
        "gpu": check.gpu,
        "steps": [asdict(s) for s in check.steps],
        "passed": all(s.status != "failed" for s in check.steps),
        "skipped": {s.name: s.detail for s in check.steps if s.status == "skipped"},
    }
    check.out.mkdir(parents=True, exist_ok=True)
    (check.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = ["# GPU check", "", f"GPU: {'yes' if check.gpu else 'no (plumbing only)'}", ""]
    lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.detail.replace('|', '/')} |" for s in check.steps]
    for s in check.steps:
        for row in s.data.get("rows", []):
            lines.append(f"- {s.name}: {row.get('name')} batch {row.get('batch')}: {json.dumps(_timings(row))}")
    (check.out / "report.md").write_text("\n".join(lines) + "\n")
    return report


def _timings(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k.endswith("_ms") or k in ("model_only", "end_to_end")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seg_perception.apps.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/gpu_check"))
    parser.add_argument("--budget-s", type=float, default=BUDGET_S)
    parser.add_argument("--no-gpu", action="store_true", help="run the plumbing only, as without a GPU")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.no_gpu
    check = Check(args.out, gpu, args.budget_s)
    check.work.mkdir(parents=True, exist_ok=True)
    check.step("environment", lambda s: environment(s, gpu))
    check.step(
        "cuda_tests", lambda s: cuda_tests(s, args.out, min(240.0, check.deadline - time.monotonic())), needs_gpu=True
    )
    check.step("bench", lambda s: bench(s, gpu, args.out))
    check.step("tensorrt", lambda s: tensorrt(s, check.work, check.deadline), needs_gpu=True)
    check.step(
        "switch_over",
        lambda s: switch_over(s, check.work, max(30.0, check.deadline - time.monotonic())),
        needs_gpu=True,
    )
    report = write_reports(check)
    print(f"[gpu-check] report: {args.out / 'report.md'} and report.json; {'passed' if report['passed'] else 'FAILED'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
