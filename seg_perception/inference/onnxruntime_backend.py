"""ONNX Runtime backend: runs the exported semantic graph (see :mod:`seg_perception.export.onnx`).

Sessions are tuned for latency: all graph optimisations, one intra-op thread per core this
process may use, sequential execution (the graph is a chain; parallel branches only add
scheduling). On ``device: cuda`` the TensorRT and CUDA execution providers are used where
they load, else the session falls back to CPU and says so; ``device`` reports what runs.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from torch import nn

from seg_perception.config.choices import PRECISION_CHOICES
from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import (
    ACCEL_INSTALL,
    INPUT_NAME,
    OUTPUT_NAMES,
    onnx_metadata_matches,
    ort_optimizations_safe,
)
from seg_perception.inference.base import SemanticOutput
from seg_perception.inference.child_export import export_in_child
from seg_perception.inference.threads import cpu_threads

log = logging.getLogger(__name__)

ORT_INSTALL = f"{ACCEL_INSTALL} (or: pip install onnxruntime-gpu==1.24.4)"


def import_onnxruntime() -> Any:
    """The onnxruntime module (it ships no type information), or a BackendError naming the
    install command."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(f"backend onnxruntime needs the onnxruntime package: {ORT_INSTALL}") from err
    return onnxruntime


def _providers(ort: Any, device: str, cache_dir: Path, precision: str) -> list[Any]:
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    device_id = int(device.partition(":")[2] or 0)
    available = set(ort.get_available_providers())
    providers: list[Any] = []
    if "TensorrtExecutionProvider" in available and _tensorrt_libs_present():
        providers.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": device_id,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir),
                    "trt_fp16_enable": precision in ("fp16", "int8"),
                    "trt_int8_enable": precision == "int8",  # Q/DQ graph: explicit scales, no calibration table
                },
            )
        )
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
    return [*providers, "CPUExecutionProvider"]


def _tensorrt_libs_present() -> bool:
    """The ORT TensorRT provider loads libnvinfer 10 (pip tensorrt); without it, skip it
    instead of letting the session log a failed load on every start."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("tensorrt_libs", "tensorrt"))


class OnnxRuntimeSemanticBackend:
    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        trt_cache_dir: str | Path | None = None,
    ) -> None:
        ort = import_onnxruntime()
        if precision not in PRECISION_CHOICES:
            raise BackendError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
        path = Path(onnx_path)
        if not path.is_file():
            raise BackendError(
                f"ONNX file not found: {path}; export it: seg-perception export --precision {precision} --out {path}"
            )
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or cpu_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only; provider fallbacks are reported below
        # Read the metadata with optimisations off first: cheap, and it decides the level.
        meta = self._metadata(ort, path)
        graph_precision = meta.get("precision")
        if graph_precision and graph_precision != precision:
            raise BackendError(f"{path} is a {graph_precision} graph, the backend was asked for {precision}")
        safe = ort_optimizations_safe(meta)
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if safe else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        if not safe:
            log.warning(
                "%s is an int8 graph with fp16 between its Q/DQ nodes (the TensorRT form): ONNX Runtime runs it "
                "without graph optimisations (slow, see artifacts.ort_optimizations_safe); for ONNX Runtime "
                "export int8 with int8_high_precision=fp32",
                path,
            )
        cache_dir = Path(trt_cache_dir) if trt_cache_dir else path.parent / "ort_trt_cache"
        providers = _providers(ort, device, cache_dir, precision)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as err:
            # Broad on purpose: onnxruntime's own (untyped) errors become a BackendError.
            raise BackendError(f"ONNX Runtime cannot load {path}: {err}") from err
        used = self._session.get_providers()
        self.device = "cpu" if used[0] == "CPUExecutionProvider" else device if ":" in device else f"{device}:0"
        if device.startswith("cuda") and self.device == "cpu":
            log.warning(
                "onnxruntime: no CUDA provider could be loaded (available: %s); running on CPU",
                ort.get_available_providers(),
            )
        self.precision = precision
        self.path = path
        self.metadata = meta
        self.providers = used
        inp = self._session.get_inputs()[0]
        names = [o.name for o in self._session.get_outputs()]
        if inp.name != INPUT_NAME or names != list(OUTPUT_NAMES):
            raise BackendError(
                f"{path} is not a semantic graph: inputs {[i.name for i in self._session.get_inputs()]}, "
                f"outputs {names}; expected {INPUT_NAME!r} -> {list(OUTPUT_NAMES)}"
            )
        self._size = tuple(d if isinstance(d, int) else None for d in inp.shape[1:3])
        log.info("onnxruntime: %s (%s) on %s via %s", path.name, precision, self.device, used[0])

    @staticmethod
    def _metadata(ort: Any, path: Path) -> dict[str, str]:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:
            # Broad on purpose: onnxruntime's own (untyped) errors become a BackendError.
            raise BackendError(f"ONNX Runtime cannot load {path}: {err}") from err
        raw = session.get_modelmeta().custom_metadata_map
        prefix = "seg_perception."
        return {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        device: str = "cpu",
        precision: str = "fp32",
        input_size: tuple[int, int] | None = None,
        onnx_path: str | Path | None = None,
    ) -> OnnxRuntimeSemanticBackend:
        """Serve ``model`` through ONNX Runtime.

        With ``onnx_path`` naming a file exported from the same weights in ``precision``,
        that file is used; a file exported from other weights or in another precision is
        refused (never overwritten). A missing file is exported (verified) there for fp32 and
        fp16; without ``onnx_path`` the export goes to a temporary file. int8 needs
        calibration frames and is refused with the export command. Without ``input_size``
        the graph has a dynamic height and width.
        """
        if onnx_path is not None and Path(onnx_path).exists():
            reason = onnx_metadata_matches(onnx_path, model, precision)
            if reason is None:
                return cls(onnx_path, device, precision)
            raise BackendError(
                f"onnxruntime cannot use {onnx_path}: {reason}; re-export it: "
                f"seg-perception export --precision {precision} --out {onnx_path}"
            )
        if precision == "int8":
            raise BackendError(
                "onnxruntime int8 needs an int8 ONNX exported with calibration frames; "
                "export it: seg-perception export --precision int8 --calib FRAMES"
            )
        size = input_size or (128, 256)
        if onnx_path is not None:
            export_in_child("semantic", model, Path(onnx_path), size, precision, dynamic_size=input_size is None)
            return cls(onnx_path, device, precision)
        with tempfile.TemporaryDirectory(prefix="seg_ort_") as tmp:  # the session keeps the graph in memory
            path = Path(tmp) / f"semantic_{precision}.onnx"
            export_in_child("semantic", model, path, size, precision, dynamic_size=input_size is None)
            return cls(path, device, precision, trt_cache_dir=Path(tempfile.gettempdir()) / "seg_perception_ort_trt")

    def run(self, frames: npt.NDArray[np.uint8], with_confidence: bool = False) -> SemanticOutput:
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BackendError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        for got, want in zip(frames.shape[1:3], self._size):
            if want is not None and got != want:
                raise BackendError(
                    f"frames are {frames.shape[2]}x{frames.shape[1]}, the graph {self.path.name} takes "
                    f"{self._size[1]}x{self._size[0]} (width x height)"
                )
        names = list(OUTPUT_NAMES) if with_confidence else [OUTPUT_NAMES[0]]
        try:
            outs = self._session.run(names, {INPUT_NAME: np.ascontiguousarray(frames)})
        except Exception as err:
            # Broad on purpose: onnxruntime's own (untyped) errors become a BackendError.
            raise BackendError(f"onnxruntime inference failed: {err}") from err
        return SemanticOutput(outs[0], outs[1] if with_confidence else None)
