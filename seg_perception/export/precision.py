"""Precision passes on an exported fp32 ONNX graph (precision lives in the graph, as
TensorRT 11's strongly typed networks require): fp16 through ModelOpt AutoCast, int8 through
ModelOpt ONNX post-training quantization (Q/DQ nodes), and the tool versions recorded in the
metadata of every export.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.export.errors import OnnxExportError
from seg_perception.inference.artifacts import ACCEL_INSTALL, INPUT_NAME

# Data for a graph's inputs: the array of its single input (``frames``), or input name -> array.
GraphInputs = npt.NDArray[Any] | Mapping[str, npt.NDArray[Any]]


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import modelopt

        versions["modelopt"] = modelopt.__version__
    except ImportError:
        pass
    return versions


def autocast_fp16(src: Path, dst: Path, reference_frames: GraphInputs, workdir: Path) -> None:
    """fp16 AutoCast of ``src`` into ``dst``. reference_frames: the graph's single input
    (``frames``) or a mapping input name -> array for graphs with other inputs."""
    try:
        from modelopt.onnx.autocast import configure_logging, convert_to_mixed_precision
    except ImportError as err:
        raise OnnxExportError(f"fp16 export needs ModelOpt AutoCast (nvidia-modelopt[onnx]): {ACCEL_INSTALL}") from err
    import onnx

    configure_logging(logging.WARNING)
    # AutoCast's reference run needs real inputs: polygraphy cannot sample random uint8 data.
    npz = workdir / "autocast_reference.npz"
    # Any values: numpy's stub would otherwise match a key against savez's allow_pickle flag.
    inputs: dict[str, Any] = (
        dict(reference_frames) if isinstance(reference_frames, Mapping) else {INPUT_NAME: reference_frames}
    )
    np.savez(npz, **inputs)
    try:
        converted = convert_to_mixed_precision(
            onnx_path=str(src), low_precision_type="fp16", keep_io_types=True, calibration_data=str(npz)
        )
    except Exception as err:
        # Broad on purpose: ModelOpt fails with many error types; any of them means no fp16 graph.
        raise OnnxExportError(f"ModelOpt AutoCast fp16 conversion failed: {err}") from err
    onnx.save(converted, str(dst))


def quantize_int8(src: Path, dst: Path, calib_frames: GraphInputs, method: str, high_precision: str) -> None:
    """ModelOpt int8 PTQ. calib_frames: the single input's data, or input name -> array."""
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as err:
        raise OnnxExportError(f"int8 export needs ModelOpt ONNX PTQ (nvidia-modelopt[onnx]): {ACCEL_INSTALL}") from err
    try:
        quantize(
            onnx_path=str(src),
            quantize_mode="int8",
            calibration_data=dict(calib_frames) if isinstance(calib_frames, Mapping) else calib_frames,
            calibration_method=method,
            calibration_eps=["cpu"],  # deterministic, runs everywhere; TensorRT uses the scales as-is
            high_precision_dtype=high_precision,
            output_path=str(dst),
            log_level="WARNING",
        )
    except Exception as err:
        # Broad on purpose: ModelOpt fails with many error types; any of them means no int8 graph.
        raise OnnxExportError(f"ModelOpt int8 quantization failed: {err}") from err
    if not dst.is_file():
        raise OnnxExportError(f"ModelOpt int8 quantization wrote no file at {dst}")
