"""PyTorch backend: eager on CPU (fp32); on CUDA (fp32/fp16) the GPU path of
:mod:`.torch_runner` (pinned upload, pre-processing on the GPU, CUDA graphs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from seg_perception.errors import BackendError
from seg_perception.inference.base import Detections, SemanticOutput
from seg_perception.inference.torch_runner import TorchFrameRunner
from seg_perception.io.image import DecodedImage
from seg_perception.models.semantic import SemanticHead

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN


class TorchSemanticBackend:
    """``takes_full_frames``: :meth:`run_images` is the faster way in (the segmenter then
    hands over decoded full-resolution frames instead of a resized batch). True on CUDA,
    where resizing on the GPU saves the host work; False on the CPU, where cv2's resize
    (``resize_batch``) is faster than torch's. ``full_frames`` overrides the default (tests
    run the GPU path's control flow on the CPU with it); ``cuda_graphs=False`` runs eagerly.
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: str,
        precision: str,
        *,
        full_frames: bool | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        if precision == "int8":
            raise BackendError("precision int8 needs the onnxruntime or tensorrt backend, not torch")
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("precision fp16 with the torch backend needs device cuda (CPU runs fp32)")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("device cuda requested but torch sees no CUDA GPU")
        self.device = device
        self.precision = precision
        dtype = torch.float16 if precision == "fp16" else torch.float32
        self._heads = {
            flag: SemanticHead(model, with_confidence=flag).to(device=device, dtype=dtype).eval()
            for flag in (False, True)
        }
        on_cuda = device.startswith("cuda")
        self.takes_full_frames = on_cuda if full_frames is None else full_frames
        self.runner = TorchFrameRunner(self._heads, device, cuda_graphs=cuda_graphs)

    @torch.inference_mode()
    def run(self, frames: npt.NDArray[np.uint8], with_confidence: bool = False) -> SemanticOutput:
        """uint8 (N, H, W, 3) RGB at the model input size (the backend contract)."""
        if self.runner.on_cuda:
            return self.runner.run_batch(frames, with_confidence)
        classes, conf = self._heads[with_confidence](torch.from_numpy(frames))
        return SemanticOutput(classes.numpy(), conf.numpy() if with_confidence else None)

    def run_images(
        self, images: Sequence[DecodedImage], size: tuple[int, int], with_confidence: bool = False
    ) -> SemanticOutput:
        """Decoded frames of any size and colour order -> class ids at ``size`` = (H, W),
        resized on the inference device (see :mod:`.torch_runner`)."""
        return self.runner.run_images(images, size, with_confidence)


class TorchInstanceBackend:
    """Eager torchvision Mask R-CNN: the default instance backend."""

    name = "torch"
    precision = "fp32"

    def __init__(self, model: MaskRCNN, input_size: tuple[int, int], device: str = "cpu") -> None:
        self.model, self.input_size, self.device = model, (int(input_size[0]), int(input_size[1])), device

    @torch.inference_mode()
    def detect(self, frames: npt.NDArray[np.uint8]) -> list[Detections]:
        """(N, H, W, 3) uint8 RGB at the model input size -> raw detections per frame."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BackendError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        model = self.model
        images, _ = model.transform(list(x))
        if any(tuple(s) != self.input_size for s in images.image_sizes):
            raise BackendError(
                f"frames of {tuple(frames.shape[1:3])} reach the model as {images.image_sizes}; "
                f"it takes {self.input_size}"
            )
        features = model.backbone(images.tensors)
        proposals, _ = model.rpn(images, features)
        dets, _ = model.roi_heads(features, proposals, images.image_sizes)
        return [Detections(d["boxes"].cpu(), d["labels"].cpu(), d["scores"].cpu(), d["masks"].cpu()) for d in dets]
