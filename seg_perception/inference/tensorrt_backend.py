"""TensorRT semantic backend: runs an engine built by :mod:`seg_perception.export.engine_build`
on torch CUDA tensors (:class:`~.tensorrt_engine.TensorRTEngine`: sidecar and engine-header
checks before anything is deserialised, its own stream ordered with torch's current one).

The same code runs TensorRT 10.x/11.x engines and TensorRT-RTX engines (the sidecar names the
library). Inputs and outputs are preallocated at the profile's largest batch; a batch of n
uses their first n rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import INPUT_NAME, OUTPUT_NAMES, read_sidecar, sidecar_path
from seg_perception.inference.base import SemanticOutput
from seg_perception.inference.tensorrt_engine import TensorRTEngine

log = logging.getLogger(__name__)


class TensorRTSemanticBackend:
    name = "tensorrt"

    def __init__(
        self,
        engine_path: str | Path,
        device: str = "cuda",
        precision: str = "fp32",
        onnx_path: str | Path | None = None,
    ) -> None:
        self._engine = engine = TensorRTEngine(engine_path, device, precision, onnx_path)
        self.device, self.precision, self.path = engine.device, precision, engine.path
        if sorted(engine.names) != sorted([INPUT_NAME, *OUTPUT_NAMES]):
            raise BackendError(
                f"{engine.path} has tensors {engine.names}; expected {INPUT_NAME!r} -> {list(OUTPUT_NAMES)}"
            )
        _, _, max_shape = engine.profile_shape(INPUT_NAME)
        self.max_batch, self._height, self._width = int(max_shape[0]), int(max_shape[1]), int(max_shape[2])
        dev = torch.device(self.device)
        self._input = torch.empty(max_shape, dtype=engine.dtype(INPUT_NAME), device=dev)
        self._outputs = {
            name: torch.empty((self.max_batch, self._height, self._width), dtype=engine.dtype(name), device=dev)
            for name in OUTPUT_NAMES
        }
        self._host_in = torch.empty(max_shape, dtype=torch.uint8).pin_memory()
        self._cache_saved = False
        log.info(
            "tensorrt: %s (%s, %s %s) on %s, batch <= %d",
            engine.path.name,
            precision,
            engine.library.name,
            engine.library.version,
            self.device,
            self.max_batch,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return self._height, self._width

    def warm_up(self) -> None:
        """One blank batch: kernels compiled and a broken engine found now, off the serving path."""
        self.run(np.zeros((1, self._height, self._width, 3), np.uint8))

    def infer(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (n, H, W, 3) CUDA tensor (n <= max_batch) -> (class ids, confidence) as
        views of the preallocated outputs, valid until the next call, ordered on torch's
        current stream (no synchronisation here)."""
        n = frames.shape[0]
        inp = self._input[:n]
        if frames.data_ptr() != inp.data_ptr():
            inp.copy_(frames, non_blocking=True)
        out = self._engine.execute({INPUT_NAME: inp}, self._outputs)
        return out[OUTPUT_NAMES[0]], out[OUTPUT_NAMES[1]]

    @torch.inference_mode()
    def run(self, frames: npt.NDArray[np.uint8], with_confidence: bool = False) -> SemanticOutput:
        if frames.ndim != 4 or frames.shape[1:] != (self._height, self._width, 3) or frames.dtype != np.uint8:
            raise BackendError(
                f"frames must be uint8 (N, {self._height}, {self._width}, 3) for {self.path.name}, "
                f"got {frames.dtype} {frames.shape}"
            )
        classes, confidence = [], []
        with torch.cuda.device(self._input.device):
            for start in range(0, len(frames), self.max_batch):
                chunk = frames[start : start + self.max_batch]
                n = len(chunk)
                host = self._host_in[:n]
                host.numpy()[...] = chunk
                inp = self._input[:n]
                inp.copy_(host, non_blocking=True)  # pinned -> device, ordered before the engine
                cls, conf = self.infer(inp)
                classes.append(cls.cpu().numpy())  # .cpu() waits on the current stream
                if with_confidence:
                    confidence.append(conf.cpu().numpy())
        if not self._cache_saved:  # TensorRT-RTX: the kernels the first batch compiled, for the next start
            self._cache_saved = True
            self._engine.save_runtime_cache()
        return SemanticOutput(np.concatenate(classes), np.concatenate(confidence) if with_confidence else None)


def engine_summary(engine_path: str | Path) -> str:
    """One line about an engine from its sidecar (for logs and the CLI)."""
    side = read_sidecar(engine_path)
    gpu = side.get("gpu") or {}
    where = (
        f"GPU {gpu.get('name')} ({gpu.get('compute_capability')})"
        if gpu
        else (f"RTX targets {', '.join(side.get('rtx_targets') or []) or 'default (8.6, 8.9, 12.x)'}")
    )
    return (
        f"{engine_path}: {side['precision']} {side['library']} {side['library_version']}, {where}, "
        f"batch {side['input']['min'][0]}-{side['input']['max'][0]}, {side['engine']['bytes'] / 1e6:.1f} MB "
        f"(sidecar {sidecar_path(engine_path).name})"
    )
