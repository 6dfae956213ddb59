"""The TensorRT serving path without a GPU: which GPUs a TensorRT-RTX engine is accepted on,
the engine-header check, the stream fence around every enqueue, the warm-up that keeps a
broken engine off the serving thread, one TensorRT logger per library.

GPUs that are not here are described by :class:`GpuInfo` records (a compute capability 9.0
device cannot be conjured on a CPU machine); everything else is the real code and, where a
library is needed, the real TensorRT-RTX.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path

import pytest
import torch

from seg_perception.errors import BackendError
from seg_perception.inference import engine_policy
from seg_perception.inference.artifacts import SidecarMismatchError, check_sidecar, sidecar_path
from seg_perception.inference.tensorrt_engine import run_fenced
from seg_perception.inference.tensorrt_library import GpuInfo, TrtLibrary, rtx_cc_matches

HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX not installed (pip install -r requirements-accel.txt)")
RTX_VERSION = "1.7.1.116"


def fake_engine(tmp_path: Path, targets: list[str]) -> Path:
    """An engine file and the sidecar build_engine would write for a TensorRT-RTX build with
    ``targets`` (the bytes are not a plan: check_sidecar only hashes them)."""
    engine = tmp_path / "m.engine"
    data = b"plan" * 64
    engine.write_bytes(data)
    side = {
        "format": 1,
        "library": "tensorrt_rtx",
        "library_version": RTX_VERSION,
        "gpu": None,
        "rtx_targets": targets,
        "precision": "fp16",
        "engine": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
        "rebuild_command": f"seg-perception build-engine --engine {engine} --library tensorrt_rtx"
        + "".join(f" --rtx-target {t}" for t in targets),
    }
    sidecar_path(engine).write_text(json.dumps(side))
    return engine


RTX = TrtLibrary(module=json, name="tensorrt_rtx", version=RTX_VERSION)  # check_sidecar reads name and version only


@pytest.mark.parametrize(
    ("gpu", "targets", "refusal"),
    [
        (GpuInfo("NVIDIA H200", (9, 0)), [], "TensorRT-RTX does not run on this GPU"),
        (GpuInfo("NVIDIA H100 80GB HBM3", (9, 0)), ["8.6"], "TensorRT-RTX does not run on this GPU"),
        (GpuInfo("NVIDIA A100-SXM4-80GB", (8, 0)), [], "TensorRT-RTX does not run on this GPU"),
        (GpuInfo("Quadro RTX 4000", (7, 5)), [], "targets the default compute capabilities 8.6, 8.9, 12.x"),
        (GpuInfo("NVIDIA GeForce RTX 4090", (8, 9)), ["8.6"], "targets compute capability 8.6"),
        (GpuInfo("Quadro RTX 4000", (7, 5)), ["7.5"], None),
        (GpuInfo("NVIDIA RTX A2000", (8, 6)), [], None),
        (GpuInfo("NVIDIA GeForce RTX 5090", (12, 0)), [], None),
        (GpuInfo("NVIDIA GB10", (12, 1)), [], None),
    ],
)
def test_tensorrt_rtx_engines_are_accepted_only_on_the_gpus_it_supports(
    tmp_path: Path, gpu: GpuInfo, targets: list[str], refusal: str | None
) -> None:
    engine = fake_engine(tmp_path, targets)
    if refusal is None:
        assert check_sidecar(engine, None, "fp16", gpu=gpu, library=RTX)["rtx_targets"] == targets
        return
    with pytest.raises(SidecarMismatchError, match=refusal) as info:
        check_sidecar(engine, None, "fp16", gpu=gpu, library=RTX)
    message = str(info.value)
    assert "\n" not in message and "rebuild it: seg-perception build-engine" in message
    if "does not run on this GPU" in message:  # the way out is TensorRT proper, not another RTX build
        command = message.split("rebuild it: ")[1]
        assert command.endswith(" --library tensorrt")
        assert "--library tensorrt_rtx" not in command and "--rtx-target" not in command


def test_compute_capability_allow_list_matches_majors_only_where_it_says_x() -> None:
    assert rtx_cc_matches("12.1", ("12.x",)) and rtx_cc_matches("8.6", ("7.5", "8.6"))
    assert not rtx_cc_matches("8.0", ("8.6", "8.9", "12.x")) and not rtx_cc_matches("9.0", ("8.6", "8.9", "12.x"))
    assert not rtx_cc_matches("1.2", ("12.x",))


@needs_rtx
def test_engine_header_check_refuses_a_malformed_engine_before_deserialising() -> None:
    from seg_perception.inference.tensorrt_library import engine_validity_problem, import_tensorrt, make_logger

    lib = import_tensorrt("tensorrt_rtx")
    runtime = lib.module.Runtime(make_logger(lib.module))
    problem = engine_validity_problem(lib, runtime, b"\0" * 256)
    assert problem is not None and "MALFORMED_ENGINE" in problem and RTX_VERSION in problem
    # TensorRT proper has no header check: nothing is claimed for its engines.
    assert engine_validity_problem(TrtLibrary(lib.module, "tensorrt", "10.13.3.9"), runtime, b"\0" * 256) is None


@needs_rtx
def test_one_tensorrt_logger_per_library_and_process() -> None:
    from seg_perception.inference.tensorrt_library import import_tensorrt, make_logger

    trt = import_tensorrt("tensorrt_rtx").module
    assert make_logger(trt) is make_logger(trt)


class _Stream:
    """Records what the fence asks of a stream (torch.cuda.Stream needs a GPU)."""

    def __init__(self, name: str, handle: int, calls: list[str]) -> None:
        self.name, self.cuda_stream, self.calls = name, handle, calls

    def wait_stream(self, stream: _Stream) -> None:
        self.calls.append(f"{self.name} waits for {stream.name}")


def test_engine_runs_on_its_own_stream_fenced_both_ways_with_the_current_one() -> None:
    calls: list[str] = []
    own, current = _Stream("engine", 7, calls), _Stream("current", 0, calls)

    def enqueue(handle: int) -> bool:
        calls.append(f"enqueue on {handle}")
        return True

    assert run_fenced(own, current, enqueue)
    assert calls == ["engine waits for current", "enqueue on 7", "current waits for engine"]
    calls.clear()

    def fails(handle: int) -> bool:
        raise RuntimeError("enqueue failed")

    with pytest.raises(RuntimeError):
        run_fenced(own, current, fails)
    assert calls[-1] == "current waits for engine"  # the current stream never runs ahead of a failed enqueue


def test_auto_takes_the_next_backend_when_an_engine_fails_its_warm_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The registry path runs the warm-up that open_engine_backend runs before a switch, so a
    bad engine is found at start-up, not on the serving thread (TensorRT itself needs a GPU:
    a stand-in backend whose warm-up fails as a broken engine would)."""
    from seg_perception.inference import registry, tensorrt_backend
    from seg_perception.models.semantic import build_semantic_model

    class BrokenEngine:
        name, device, precision = "tensorrt", "cuda:0", "fp32"

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def warm_up(self) -> None:
            raise RuntimeError("an illegal memory access was encountered")

    monkeypatch.setattr(tensorrt_backend, "TensorRTSemanticBackend", BrokenEngine)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    artifacts = registry.SemanticArtifacts(engine=engine, input_size=(64, 128))
    with caplog.at_level(logging.INFO, logger="seg_perception.inference.registry"):
        chosen = registry.create_semantic_backend(
            "auto", "cpu", "fp32", lambda: build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)[0], artifacts
        )
    assert chosen.name == "torch"
    assert "tensorrt: TensorRT engine" in caplog.text and "fails its warm-up run" in caplog.text
    with pytest.raises(BackendError, match="fails its warm-up run: an illegal memory access"):
        registry.create_semantic_backend("tensorrt", "cpu", "fp32", lambda: None, artifacts)  # type: ignore[arg-type,return-value]


def test_tensorrt_rtx_alone_is_no_runtime_on_a_data_centre_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """An H200 with only TensorRT-RTX installed: no engine could run, so none is built."""
    if not HAS_RTX or importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("needs TensorRT-RTX without TensorRT")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(engine_policy, "current_gpu", lambda index=None: GpuInfo("NVIDIA H200", (9, 0)))
    problem = engine_policy.tensorrt_runtime_problem("cuda")
    assert problem is not None and "does not run on NVIDIA H200 (compute capability 9.0" in problem
    assert engine_policy.resolve_policy("auto", "auto", "cuda") == ("never", f"auto: {problem}")
    monkeypatch.setattr(engine_policy, "current_gpu", lambda index=None: GpuInfo("NVIDIA L4", (8, 9)))
    assert engine_policy.tensorrt_runtime_problem("cuda:0") is None


def test_start_up_line_says_backend_device_precision_and_shouts_a_cpu_fallback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from seg_perception.inference import registry
    from seg_perception.models.semantic import build_semantic_model

    def build() -> torch.nn.Module:
        return build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)[0]

    monkeypatch.setattr(registry, "nvidia_gpu_present", lambda: False)
    with caplog.at_level(logging.INFO, logger="seg_perception.inference.registry"):
        registry.create_semantic_backend("torch", "cpu", "fp32", build)
    assert "semantic: serving on torch, device cpu, precision fp32 (backend torch configured)" in caplog.text
    assert "CPU FALLBACK" not in caplog.text
    caplog.clear()
    # A Jetson whose pip torch is a CPU-only wheel: the GPU is there, torch cannot see it.
    monkeypatch.setattr(registry, "nvidia_gpu_present", lambda: True)
    if torch.cuda.is_available():
        pytest.skip("torch sees the GPU here: device auto resolves to it")
    with caplog.at_level(logging.INFO, logger="seg_perception.inference.registry"):
        registry.create_semantic_backend("auto", "auto", "fp32", build)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CPU FALLBACK on a machine with an NVIDIA GPU" in warnings[0].getMessage()
    assert "device auto was asked for" in warnings[0].getMessage() and "docs/JETSON.md" in warnings[0].getMessage()
    line = registry.log_serving("semantic", registry.create_semantic_backend("torch", "cpu", "fp32", build), "cpu", "x")
    assert "CPU FALLBACK" not in line  # device cpu configured is no fallback


def test_a_timing_cache_that_cannot_be_written_costs_a_warning_not_the_engine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """TensorRT proper (not importable without a GPU here) hands back its timing cache after
    the build; the engine and sidecar are written first, so a failing cache write only warns."""
    from seg_perception.export import engine_build

    class Config:  # the two calls build_engine makes on a TensorRT IBuilderConfig here
        def get_timing_cache(self) -> object:
            return type("Cache", (), {"serialize": lambda self: b"cache"})()

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="seg_perception.export.engine_build"):
        engine_build._save_timing_cache(Config(), blocked / "timing.cache")
    assert "cannot write the timing cache" in caplog.text
    engine_build._save_timing_cache(Config(), tmp_path / "timing.cache")
    assert (tmp_path / "timing.cache").read_bytes() == b"cache"
