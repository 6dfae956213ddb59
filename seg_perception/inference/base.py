"""The backend interface every inference backend implements.

A semantic backend takes a batch of uint8 RGB frames already resized to the model input
size and returns uint8 class ids (and optionally confidence) at that size. Normalisation and
the per-pixel reduction live inside the model graph (:class:`seg_perception.models.SemanticHead`),
so torch, ONNX Runtime and TensorRT backends differ only in how they execute that graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICE_CHOICES = ("auto", "cuda", "cpu")
PRECISION_CHOICES = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class SemanticOutput:
    """class_ids: (N, H, W) uint8 train ids; confidence: (N, H, W) uint8 or None."""

    class_ids: np.ndarray
    confidence: np.ndarray | None


@runtime_checkable
class SemanticBackend(Protocol):
    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # "fp32", "fp16", "int8"

    def run(self, frames: np.ndarray, with_confidence: bool = False) -> SemanticOutput:
        """frames: (N, H, W, 3) uint8 RGB at the model input size."""
        ...
