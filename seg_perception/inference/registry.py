"""Backend registry and the ``auto`` choice."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from ..errors import BackendError, ConfigError
from .base import BACKEND_CHOICES, SemanticBackend
from .torch_backend import TorchSemanticBackend

log = logging.getLogger(__name__)

# name -> factory(model builder, device, precision). ONNX Runtime and TensorRT register here
# once they exist; until then asking for them by name is a clear error and auto picks torch.
SEMANTIC_BACKENDS: dict[str, Callable[[Callable[[], nn.Module], str, str], SemanticBackend]] = {
    "torch": lambda build, device, precision: TorchSemanticBackend(build(), device, precision),
}


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def create_semantic_backend(
    backend: str, device: str, precision: str, build_model: Callable[[], nn.Module]
) -> SemanticBackend:
    """Create the requested backend. ``auto`` takes the first usable of tensorrt,
    onnxruntime, torch and logs why it chose it."""
    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {backend!r}; expected one of {list(BACKEND_CHOICES)}")
    device = resolve_device(device)
    if backend == "auto":
        for candidate in ("tensorrt", "onnxruntime", "torch"):
            if candidate in SEMANTIC_BACKENDS:
                log.info("backend auto: using %s on %s (%s)", candidate, device, precision)
                return SEMANTIC_BACKENDS[candidate](build_model, device, precision)
    if backend not in SEMANTIC_BACKENDS:
        raise BackendError(
            f"backend {backend!r} is not available in this build; available: {sorted(SEMANTIC_BACKENDS)}"
        )
    return SEMANTIC_BACKENDS[backend](build_model, device, precision)
