"""Backend registry and the ``auto`` choice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from seg_perception.config.choices import BACKEND_CHOICES
from seg_perception.errors import BackendError, ConfigError
from seg_perception.inference.base import SemanticBackend
from seg_perception.inference.torch_backend import TorchSemanticBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SemanticArtifacts:
    """Files of one (model, input size, precision): the exported ONNX and the TensorRT engine
    built from it (see :func:`seg_perception.inference.artifacts.artifact_paths`). None = not
    known; input_size None = the ONNX Runtime graph is exported with a dynamic size."""

    onnx: Path | None = None
    engine: Path | None = None
    input_size: tuple[int, int] | None = None


Factory = Callable[[Callable[[], nn.Module], str, str, SemanticArtifacts], SemanticBackend]


def _torch(
    build: Callable[[], nn.Module], device: str, precision: str, artifacts: SemanticArtifacts
) -> SemanticBackend:
    return TorchSemanticBackend(build(), device, precision)


def _onnxruntime(
    build: Callable[[], nn.Module], device: str, precision: str, artifacts: SemanticArtifacts
) -> SemanticBackend:
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    return OnnxRuntimeSemanticBackend.from_model(build(), device, precision, artifacts.input_size, artifacts.onnx)


def _tensorrt(
    build: Callable[[], nn.Module], device: str, precision: str, artifacts: SemanticArtifacts
) -> SemanticBackend:
    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend

    if artifacts.engine is None:
        raise BackendError("backend tensorrt needs an engine: seg-perception export, then seg-perception build-engine")
    backend = TensorRTSemanticBackend(artifacts.engine, device, precision, onnx_path=artifacts.onnx)
    try:
        # As open_engine_backend does before a switch: a broken engine fails here, where
        # `auto` can still take the next backend, not on the serving thread.
        backend.warm_up()
    except BackendError:
        raise
    except Exception as err:
        # Broad on purpose: TensorRT and CUDA raise their own (untyped) errors.
        raise BackendError(f"TensorRT engine {artifacts.engine} fails its warm-up run: {err}") from err
    return backend


# name -> factory(model builder, device, precision, artifacts)
SEMANTIC_BACKENDS: dict[str, Factory] = {"torch": _torch, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def create_semantic_backend(
    backend: str,
    device: str,
    precision: str,
    build_model: Callable[[], nn.Module],
    artifacts: SemanticArtifacts | None = None,
    skip: Mapping[str, str] | None = None,
) -> SemanticBackend:
    """Create the requested backend. ``auto`` takes the first usable of tensorrt (a valid
    engine exists), onnxruntime, torch, and logs its choice and why it skipped the others.
    ``skip``: backends ``auto`` must not take, with the reason (e.g. the engine policy's)."""
    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {backend!r}; expected one of {list(BACKEND_CHOICES)}")
    requested, device = device, resolve_device(device)
    artifacts = artifacts or SemanticArtifacts()
    if backend == "auto":
        skipped: list[str] = []
        for candidate in AUTO_ORDER:
            if skip and candidate in skip:
                skipped.append(f"{candidate}: {skip[candidate]}")
                continue
            if candidate == "tensorrt" and (artifacts.engine is None or not artifacts.engine.is_file()):
                skipped.append("tensorrt: no engine built")
                continue
            if candidate == "onnxruntime" and (artifacts.onnx is None or not artifacts.onnx.is_file()):
                # auto never exports at start-up (seconds to minutes on a CPU); `backend: onnxruntime` does
                skipped.append("onnxruntime: no exported ONNX")
                continue
            try:
                chosen = SEMANTIC_BACKENDS[candidate](build_model, device, precision, artifacts)
            except BackendError as err:
                skipped.append(f"{candidate}: {err}")
                continue
            if candidate == "onnxruntime" and device.startswith("cuda") and not chosen.device.startswith("cuda"):
                # onnxruntime-gpu built for another CUDA major than torch's (or the CPU
                # package) loads no CUDA provider and runs on the CPU: torch on the GPU is
                # the faster choice, and a CPU fallback must not pass for a GPU backend.
                skipped.append(
                    "onnxruntime: no CUDA execution provider loads here (onnxruntime-gpu built for another "
                    f"CUDA major than torch's {torch.version.cuda}?), it would run on the CPU"
                )
                continue
            why = "backend auto" + (f"; skipped {'; '.join(skipped)}" if skipped else "")
            log_serving("semantic", chosen, requested, why)
            return chosen
        raise BackendError(f"backend auto: no backend can run {precision} on {device}: " + "; ".join(skipped))
    chosen = SEMANTIC_BACKENDS[backend](build_model, device, precision, artifacts)
    log_serving("semantic", chosen, requested, f"backend {backend} configured")
    return chosen


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU, whatever torch sees: the driver's device
    nodes (desktop/server: /dev/nvidia0; Jetson/DRIVE: /dev/nvhost-*, /etc/nv_tegra_release)."""
    return any(
        Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0", "/etc/nv_tegra_release")
    )


def log_serving(model: str, backend: object, requested_device: str, why: str) -> str:
    """The start-up line: which backend, device and precision a model ended on and why.
    ``requested_device``: as configured (auto | cuda[:N] | cpu). A warning where it ended on
    the CPU although the GPU was asked for, or ``auto`` ran on a machine with an NVIDIA GPU
    (a CPU-only torch wheel on a Jetson, a CUDA provider that did not load): a silent CPU
    fallback must not go unnoticed. ``device: cpu`` configured is no fallback."""
    name, device, precision = (getattr(backend, a, "?") for a in ("name", "device", "precision"))
    line = f"{model}: serving on {name}, device {device}, precision {precision} ({why})"
    asked_gpu = requested_device.startswith("cuda") or (requested_device == "auto" and nvidia_gpu_present())
    if str(device) == "cpu" and asked_gpu:
        cuda = torch.version.cuda or "none: a CPU-only wheel"
        seen = "sees the GPU" if torch.cuda.is_available() else "sees no GPU"
        line += (
            f"; CPU FALLBACK on a machine with an NVIDIA GPU (torch {torch.__version__}, CUDA build {cuda}, "
            f"{seen}; device {requested_device} was asked for): see docs/JETSON.md for Jetson and DRIVE"
        )
        log.warning(line)
    else:
        log.info(line)
    return line
