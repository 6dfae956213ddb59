"""TensorRT backend: runs an engine built by :mod:`seg_perception.export.engine_build` on torch's
CUDA stream.

Engine I/O is bound to preallocated torch CUDA tensors (``set_tensor_address``) and the
engine is enqueued with ``execute_async_v3`` on ``torch.cuda.current_stream()``: one CUDA
context shared with pre- and post-processing, no pycuda, no extra synchronisation. The same
code runs TensorRT 10.x/11.x engines and TensorRT-RTX engines (the sidecar names the
library). Before anything is deserialised the sidecar is checked (library version, GPU,
precision, ONNX hash) and a mismatch is refused with the rebuild command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import INPUT_NAME, OUTPUT_NAMES, check_sidecar, read_sidecar, sidecar_path
from seg_perception.inference.base import SemanticOutput
from seg_perception.inference.tensorrt_library import GpuInfo, import_tensorrt, make_logger

log = logging.getLogger(__name__)


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {
        "UINT8": torch.uint8,
        "INT8": torch.int8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "BOOL": torch.bool,
    }
    key = str(dtype).rsplit(".", 1)[-1]
    if key not in table:
        raise BackendError(f"engine tensor type {key} is not supported by the tensorrt backend")
    return table[key]


class TensorRTSemanticBackend:
    name = "tensorrt"

    def __init__(
        self,
        engine_path: str | Path,
        device: str = "cuda",
        precision: str = "fp32",
        onnx_path: str | Path | None = None,
    ) -> None:
        engine_path = Path(engine_path)
        if not device.startswith("cuda"):
            raise BackendError(f"backend tensorrt runs on a CUDA GPU, device {device!r} was asked for")
        if not torch.cuda.is_available():
            raise BackendError(
                "backend tensorrt needs a CUDA GPU and torch sees none; use backend onnxruntime or torch"
            )
        if not engine_path.is_file():
            raise BackendError(
                f"TensorRT engine not found: {engine_path}; "
                f"build it: seg-perception build-engine --engine {engine_path} ..."
            )
        side = read_sidecar(engine_path)
        lib = import_tensorrt(side.get("library"))
        self.device = device if ":" in device else f"cuda:{torch.cuda.current_device()}"
        dev = torch.device(self.device)
        gpu = GpuInfo(torch.cuda.get_device_name(dev), torch.cuda.get_device_capability(dev))
        self.sidecar = check_sidecar(engine_path, onnx_path, precision, gpu=gpu, library=lib)
        self.precision = precision
        self.path = engine_path
        trt = lib.module
        self._trt_logger = make_logger(trt)
        with torch.cuda.device(dev):
            self._runtime = trt.Runtime(self._trt_logger)
            self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self._engine is None:
                raise BackendError(
                    f"{lib.name} {lib.version} cannot deserialise {engine_path}; "
                    f"rebuild it: {self.sidecar['rebuild_command']}"
                )
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise BackendError(f"cannot create a TensorRT execution context for {engine_path} (GPU memory?)")
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            if sorted(names) != sorted([INPUT_NAME, *OUTPUT_NAMES]):
                raise BackendError(
                    f"{engine_path} has tensors {names}; expected {INPUT_NAME!r} -> {list(OUTPUT_NAMES)}"
                )
            _, _, max_shape = self._engine.get_tensor_profile_shape(INPUT_NAME, 0)
            self.max_batch, self._height, self._width = int(max_shape[0]), int(max_shape[1]), int(max_shape[2])
            # Preallocated at the largest batch; a batch of n uses the first n rows (contiguous views).
            self._input = torch.empty(
                tuple(max_shape), dtype=_torch_dtype(trt, self._engine.get_tensor_dtype(INPUT_NAME)), device=dev
            )
            self._outputs = {
                name: torch.empty(
                    (self.max_batch, self._height, self._width),
                    dtype=_torch_dtype(trt, self._engine.get_tensor_dtype(name)),
                    device=dev,
                )
                for name in OUTPUT_NAMES
            }
            self._host_in = torch.empty(tuple(max_shape), dtype=torch.uint8).pin_memory()
        log.info(
            "tensorrt: %s (%s, %s %s) on %s, batch <= %d",
            engine_path.name,
            precision,
            lib.name,
            lib.version,
            self.device,
            self.max_batch,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return self._height, self._width

    def infer(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (n, H, W, 3) CUDA tensor (n <= max_batch) -> (class ids, confidence) as
        views of the preallocated outputs, valid until the next call, ordered on torch's
        current stream (no synchronisation here)."""
        n = frames.shape[0]
        inp = self._input[:n]
        if frames.data_ptr() != inp.data_ptr():
            inp.copy_(frames, non_blocking=True)
        ctx = self._context
        ctx.set_input_shape(INPUT_NAME, tuple(inp.shape))
        ctx.set_tensor_address(INPUT_NAME, inp.data_ptr())
        for name, out in self._outputs.items():
            ctx.set_tensor_address(name, out.data_ptr())  # rows 0..n-1 of a contiguous buffer
        stream = torch.cuda.current_stream(self._input.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"TensorRT execution of {self.path.name} failed (see the TensorRT log)")
        return self._outputs[OUTPUT_NAMES[0]][:n], self._outputs[OUTPUT_NAMES[1]][:n]

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
        return SemanticOutput(np.concatenate(classes), np.concatenate(confidence) if with_confidence else None)


def engine_summary(engine_path: str | Path) -> str:
    """One line about an engine from its sidecar (for logs and the CLI)."""
    side = read_sidecar(engine_path)
    gpu = side.get("gpu") or {}
    where = (
        f"GPU {gpu.get('name')} ({gpu.get('compute_capability')})"
        if gpu
        else (f"RTX targets {', '.join(side.get('rtx_targets') or []) or 'default (Ampere+)'}")
    )
    return (
        f"{engine_path}: {side['precision']} {side['library']} {side['library_version']}, {where}, "
        f"batch {side['input']['min'][0]}-{side['input']['max'][0]}, {side['engine']['bytes'] / 1e6:.1f} MB "
        f"(sidecar {sidecar_path(engine_path).name})"
    )
