"""The backend interface every inference backend implements.

A semantic backend takes a batch of uint8 RGB frames already resized to the model input
size and returns uint8 class ids (and optionally confidence) at that size. Normalisation and
the per-pixel reduction live inside the model graph (:class:`seg_perception.models.semantic.SemanticHead`),
so torch, ONNX Runtime and TensorRT backends differ only in how they execute that graph.

A backend may also take the decoded full-resolution frames (:class:`FullFrameBackend`) when
it resizes them faster than the host would (the torch backend on CUDA resizes on the GPU);
the segmenter uses that path where ``takes_full_frames`` is true and ``run`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from seg_perception.io.image import DecodedImage

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


@runtime_checkable
class FullFrameBackend(SemanticBackend, Protocol):
    takes_full_frames: bool  # False: the caller should resize on the host and call run

    def run_images(
        self, images: Sequence[DecodedImage], size: tuple[int, int], with_confidence: bool = False
    ) -> SemanticOutput:
        """Decoded frames (any sizes and colour orders) -> outputs at ``size`` = (H, W), as
        ``run`` gives for the same frames resized by ``resize_batch`` (up to rounding)."""
        ...
