"""The backend interface every inference backend implements.

A semantic backend takes a batch of uint8 RGB frames already resized to the model input
size and returns uint8 class ids (and optionally confidence) at that size. Normalisation and
the per-pixel reduction live inside the model graph (:class:`seg_perception.models.semantic.SemanticHead`),
so torch, ONNX Runtime and TensorRT backends differ only in how they execute that graph.

A backend may also take the decoded full-resolution frames (:class:`FullFrameBackend`) when
it resizes them faster than the host would (the torch backend on CUDA resizes on the GPU);
the segmenter uses that path where ``takes_full_frames`` is true and ``run`` elsewhere.

An instance backend (:class:`InstanceBackend`) takes the same batch and returns raw
:class:`Detections` per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

    from seg_perception.io.image import DecodedImage


@dataclass(frozen=True)
class SemanticOutput:
    """class_ids: (N, H, W) uint8 train ids; confidence: (N, H, W) uint8 or None."""

    class_ids: npt.NDArray[np.uint8]
    confidence: npt.NDArray[np.uint8] | None


@runtime_checkable
class SemanticBackend(Protocol):
    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # "fp32", "fp16", "int8"

    def run(self, frames: npt.NDArray[np.uint8], with_confidence: bool = False) -> SemanticOutput:
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


@dataclass(frozen=True)
class Detections:
    """Raw detections of one frame at the model input size (what a backend returns).

    boxes (n, 4) float32 in model pixels, labels (n,) int64 model class indices (1..K),
    scores (n,) float32, masks (n, 1, M, M) float32 per-box probabilities (roi layout).
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    masks: torch.Tensor


class InstanceBackend(Protocol):
    """What runs Mask R-CNN detection for an InstanceSegmenter (torch eager, ONNX Runtime split)."""

    name: str  # "torch", "onnxruntime"
    device: str
    precision: str

    def detect(self, frames: npt.NDArray[np.uint8]) -> list[Detections]:
        """(N, H, W, 3) uint8 RGB at the model input size -> raw detections per frame."""
        ...
