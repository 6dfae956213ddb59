"""PyTorch backend: eager execution on CPU (fp32) or CUDA (fp32/fp16)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import BackendError
from ..models import SemanticHead
from .base import SemanticOutput


class TorchSemanticBackend:
    name = "torch"

    def __init__(self, model: nn.Module, device: str, precision: str) -> None:
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

    @torch.inference_mode()
    def run(self, frames: np.ndarray, with_confidence: bool = False) -> SemanticOutput:
        x = torch.from_numpy(frames)
        if self.device != "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
        classes, conf = self._heads[with_confidence](x)
        return SemanticOutput(
            classes.cpu().numpy(), conf.cpu().numpy() if with_confidence else None
        )
