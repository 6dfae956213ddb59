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
    return TensorRTSemanticBackend(artifacts.engine, device, precision, onnx_path=artifacts.onnx)


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
    device = resolve_device(device)
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
            log.info(
                "backend auto: using %s on %s (%s)%s",
                candidate,
                chosen.device,
                precision,
                f"; skipped {'; '.join(skipped)}" if skipped else "",
            )
            return chosen
        raise BackendError(f"backend auto: no backend can run {precision} on {device}: " + "; ".join(skipped))
    return SEMANTIC_BACKENDS[backend](build_model, device, precision, artifacts)
