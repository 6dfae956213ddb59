"""One TensorRT engine, loaded and run on torch CUDA tensors: what the semantic and the
instance TensorRT backends share.

Loading checks, in this order, before anything is deserialised: a CUDA device torch sees,
the sidecar (library version, GPU, precision, ONNX hash; a mismatch is refused with the
rebuild command), and for TensorRT-RTX the engine header (``IRuntime.get_engine_validity``:
compute capability, driver, CUDA runtime). TensorRT-RTX compiles kernels just in time at
first use; its runtime cache (``<engine>.runtime_cache``) keeps them across starts.

Execution: I/O bound to torch CUDA tensors (``set_tensor_address``), enqueued with
``execute_async_v3`` on the engine's own stream, which waits for torch's current stream
before and is waited for by it after (:func:`run_fenced`): work ordered as if it ran on the
current stream, without TensorRT's extra synchronisations on the legacy default stream.
Output shapes come from the context after ``set_input_shape`` (dynamic RoI counts).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import check_sidecar, read_sidecar
from seg_perception.inference.tensorrt_library import (
    GpuInfo,
    TrtLibrary,
    engine_validity_problem,
    import_tensorrt,
    make_logger,
)

log = logging.getLogger(__name__)


_DTYPES = {
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "BOOL": torch.bool,
}


def torch_dtype(dtype: Any) -> torch.dtype:
    """A TensorRT ``DataType`` as a torch dtype."""
    key = str(dtype).rsplit(".", 1)[-1]
    if key not in _DTYPES:
        raise BackendError(f"engine tensor type {key} is not supported by the tensorrt backend")
    return _DTYPES[key]


class StreamLike(Protocol):
    """What :func:`run_fenced` needs of a ``torch.cuda.Stream``."""

    cuda_stream: int

    def wait_stream(self, stream: Any) -> None: ...


def run_fenced(own: StreamLike, current: StreamLike, enqueue: Callable[[int], bool]) -> bool:
    """``enqueue(own stream handle)`` ordered after the work already queued on ``current``,
    and ``current`` ordered after it: TensorRT gets a stream of its own (on the legacy
    default stream it synchronises more and warns) and callers still see one stream."""
    own.wait_stream(current)
    try:
        return enqueue(own.cuda_stream)
    finally:
        current.wait_stream(own)


def runtime_cache_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".runtime_cache")


class TensorRTEngine:
    """A deserialised engine with one execution context on ``device`` (``cuda`` or ``cuda:N``).

    ``onnx_path``: the graph the engine must come from (sidecar hash), or None.
    ``rebuild``: what to tell the user when the engine cannot run (default: the sidecar's).
    """

    def __init__(
        self, engine_path: str | Path, device: str, precision: str, onnx_path: str | Path | None = None
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
        dev = torch.device(device if ":" in device else f"cuda:{torch.cuda.current_device()}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(f"device {dev} does not exist: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
        self.device = str(dev)
        gpu = GpuInfo(torch.cuda.get_device_name(dev), torch.cuda.get_device_capability(dev))
        self.sidecar = check_sidecar(engine_path, onnx_path, precision, gpu=gpu, library=lib)
        self.library: TrtLibrary = lib
        self.path = engine_path
        self.precision = precision
        trt = lib.module
        data = engine_path.read_bytes()
        with torch.cuda.device(dev):
            self._runtime = trt.Runtime(make_logger(trt))
            problem = engine_validity_problem(lib, self._runtime, data)
            if problem is not None:
                raise BackendError(f"{engine_path}: {problem}; rebuild it: {self.sidecar['rebuild_command']}")
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise BackendError(
                    f"{lib.name} {lib.version} cannot deserialise {engine_path}; "
                    f"rebuild it: {self.sidecar['rebuild_command']}"
                )
            self._cache: Any = None
            self._context = self._engine.create_execution_context(*self._runtime_config())
            if self._context is None:
                raise BackendError(f"cannot create a TensorRT execution context for {engine_path} (GPU memory?)")
            self._stream = torch.cuda.Stream(dev)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        self.names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode_input = trt.TensorIOMode.INPUT
        self.inputs = [n for n in self.names if self._engine.get_tensor_mode(n) == mode_input]
        self.outputs = [n for n in self.names if n not in self.inputs]
        self._lock = threading.Lock()  # one context: one enqueue at a time

    def _runtime_config(self) -> tuple[Any, ...]:
        """TensorRT-RTX: a runtime config holding the runtime cache read from disk (kernels
        compiled by an earlier start); ``()`` for TensorRT, which compiles nothing at run time."""
        if not self.library.is_rtx or not hasattr(self._engine, "create_runtime_config"):
            return ()
        config = self._engine.create_runtime_config()
        cache = config.create_runtime_cache()
        path = runtime_cache_path(self.path)
        if path.is_file() and not cache.deserialize(path.read_bytes()):
            log.warning("tensorrt_rtx: runtime cache %s is unusable; compiling the kernels again", path)
        if not config.set_runtime_cache(cache):
            log.warning("tensorrt_rtx: cannot attach the runtime cache; kernels compile at every start")
            return (config,)
        self._cache = cache
        return (config,)

    def save_runtime_cache(self) -> None:
        """Write the kernels compiled so far (TensorRT-RTX) next to the engine; call after a
        warm-up run. Best effort: a read-only engines folder only costs start-up time."""
        if self._cache is None:
            return
        path = runtime_cache_path(self.path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(bytes(memoryview(self._cache.serialize())))
            os.replace(tmp, path)
        except OSError as err:
            log.warning("tensorrt_rtx: cannot write the runtime cache %s (%s)", path, err)

    def profile_shape(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) of input ``name`` in profile 0."""
        lo, mid, hi = self._engine.get_tensor_profile_shape(name, 0)
        return tuple(lo), tuple(mid), tuple(hi)

    def dtype(self, name: str) -> torch.dtype:
        return torch_dtype(self._engine.get_tensor_dtype(name))

    def execute(
        self, inputs: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run on contiguous CUDA ``inputs`` (name -> tensor of the engine's dtype). Outputs:
        ``outputs`` where given (preallocated, at least as large as needed: the leading rows
        are written), else new tensors of the shapes the context infers. Ordered on torch's
        current stream (see :func:`run_fenced`); nothing is synchronised here."""
        with self._lock, torch.cuda.device(self._stream.device):
            ctx = self._context
            for name, tensor in inputs.items():
                ctx.set_input_shape(name, tuple(tensor.shape))
                ctx.set_tensor_address(name, tensor.data_ptr())
            result: dict[str, torch.Tensor] = {}
            for name in self.outputs:
                shape = tuple(ctx.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise BackendError(
                        f"{self.path.name}: output {name} shape {shape} is unknown after set_input_shape"
                    )
                given = None if outputs is None else outputs.get(name)
                if given is None or _numel(shape) == 0:
                    out = torch.empty(shape, dtype=self.dtype(name), device=self._stream.device)
                else:  # the leading elements of a contiguous buffer: rows 0..n-1
                    out = given.view(-1)[: _numel(shape)].view(shape)
                ctx.set_tensor_address(name, out.data_ptr())
                result[name] = out
            current = torch.cuda.current_stream(self._stream.device)
            if not run_fenced(self._stream, current, ctx.execute_async_v3):
                raise BackendError(f"TensorRT execution of {self.path.name} failed (see the TensorRT log)")
            return result


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
