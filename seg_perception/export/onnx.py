"""Export the semantic graph to ONNX in fp32, fp16 or int8, verified in ONNX Runtime.

The exported graph is the one every backend runs (:class:`seg_perception.models.semantic.SemanticHead`):
``frames`` uint8 (N, H, W, 3) RGB in; ``class_ids`` and ``confidence`` uint8 (N, H, W) out;
normalisation, argmax and max-softmax inside the graph. The batch axis is dynamic.

Precision lives in the graph, as TensorRT 11 (strongly typed networks only) requires and as
TensorRT 10 and TensorRT-RTX accept:

* fp32: ``torch.onnx.export`` (TorchScript exporter, opset 17).
* fp16: ModelOpt AutoCast (``modelopt.onnx.autocast.convert_to_mixed_precision``) converts
  the fp32 graph; nodes whose activations exceed the fp16-safe range on the reference frames
  stay fp32. The uint8 inputs and outputs are unchanged.
* int8: ModelOpt ONNX post-training quantization (``modelopt.onnx.quantization.quantize``)
  inserts Q/DQ nodes calibrated on real frames (``calib_frames``).

Every export is verified before it is written: the graph runs in ONNX Runtime (CPU) on
varied frames and its class maps are compared pixel by pixel with torch fp32. fp32 must agree
on >= 99.9 % of pixels; fp16 and int8 have their own (lower) gates, see
:data:`MIN_AGREEMENT`. A graph below its gate is refused (:class:`OnnxExportError`) and
nothing is written. What was checked is stored in the ONNX file's metadata
(``seg_perception.*`` keys, read back with
:func:`seg_perception.inference.artifacts.read_onnx_metadata`).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from seg_perception.config.choices import PRECISION_CHOICES
from seg_perception.export.errors import OnnxExportError
from seg_perception.export.precision import autocast_fp16, quantize_int8, tool_versions
from seg_perception.inference.artifacts import (
    ACCEL_INSTALL,
    INPUT_NAME,
    META_PREFIX,
    OUTPUT_NAMES,
    SEMANTIC_GRAPH_FORMAT,
    ort_optimizations_safe,
    weights_fingerprint,
)
from seg_perception.inference.threads import cpu_threads
from seg_perception.models.semantic import SemanticHead

log = logging.getLogger(__name__)

OPSET = 17
# Every graph is exported the same way: the TorchScript exporter (dynamo=False), OPSET, constants folded.
EXPORTER_OPTIONS: dict[str, Any] = {"dynamo": False, "opset_version": OPSET, "do_constant_folding": True}

# Pixel agreement of the exported graph's class maps with torch fp32, per precision. fp32 must
# be exact up to float reordering. fp16 and int8 gates catch broken graphs (a wrong cast, a
# collapsed range); they are not accuracy claims: a trained model agrees far better than an
# untrained one, whose logits are nearly tied everywhere.
MIN_AGREEMENT: dict[str, float] = {"fp32": 0.999, "fp16": 0.99, "int8": 0.90}

# --------------------------------------------------------------------------- helpers


def require_onnx_tools() -> None:
    """Raise a clear error when the export stack (onnx, onnxruntime) is not installed."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise OnnxExportError(f"ONNX export needs {', '.join(missing)}: {ACCEL_INSTALL}")


def verification_frames(input_size: tuple[int, int], count: int = 4, seed: int = 0) -> npt.NDArray[np.uint8]:
    """Deterministic varied frames: smooth colour fields at several scales plus pixel noise,
    so class maps have regions and boundaries (uniform noise alone averages out)."""
    height, width = input_size
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for i in range(count):
        cells = (max(2, height // (8 << (i % 3))), max(2, width // (8 << (i % 3))))
        coarse = torch.rand(1, 3, *cells, generator=gen) * 255.0
        smooth = nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        noisy = smooth + (torch.rand(1, 3, height, width, generator=gen) - 0.5) * 40.0
        frames.append(noisy.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0))
    return torch.stack(frames).contiguous().numpy()


def class_agreement(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    """Fraction of pixels whose class ids are equal."""
    if a.shape != b.shape:
        raise OnnxExportError(f"class maps differ in shape: {a.shape} vs {b.shape}")
    return float((a == b).mean())


def _cpu_session(path: str | Path, optimize: bool = True) -> Any:
    """An onnxruntime.InferenceSession on the CPU (onnxruntime ships no type information)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    level = "ORT_ENABLE_ALL" if optimize else "ORT_DISABLE_ALL"
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.intra_op_num_threads = cpu_threads()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _run_session(session: Any, frames: npt.NDArray[np.uint8], batch: int = 4) -> npt.NDArray[np.uint8]:
    out = [session.run([OUTPUT_NAMES[0]], {INPUT_NAME: frames[i : i + batch]})[0] for i in range(0, len(frames), batch)]
    return np.concatenate(out)


@torch.inference_mode()
def _run_torch(head: SemanticHead, frames: npt.NDArray[np.uint8], batch: int = 4) -> npt.NDArray[np.uint8]:
    out = [head(torch.from_numpy(frames[i : i + batch]))[0].numpy() for i in range(0, len(frames), batch)]
    return np.concatenate(out)


def _check_frames(frames: npt.NDArray[np.uint8], input_size: tuple[int, int], what: str) -> npt.NDArray[np.uint8]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise OnnxExportError(f"{what} must be a non-empty uint8 array (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if tuple(frames.shape[1:3]) != tuple(input_size):
        raise OnnxExportError(
            f"{what} are {frames.shape[2]}x{frames.shape[1]} (width x height), the export input size is "
            f"{input_size[1]}x{input_size[0]}: resize them first (pipeline.preprocess.resize_batch)"
        )
    return np.ascontiguousarray(frames)


def save_with_metadata(src: str | Path, dst: str | Path, meta: Mapping[str, str], what: str = "") -> Path:
    """Copy the ONNX graph ``src`` to ``dst`` with ``seg_perception.*`` metadata ``meta``
    (replacing any earlier ones), after onnx.checker; written atomically."""
    import onnx

    proto = onnx.load(str(src))
    kept = [p for p in proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    props = {p.key: p.value for p in kept}
    props.update({META_PREFIX + k: str(v) for k, v in meta.items()})
    onnx.helper.set_model_props(proto, props)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise OnnxExportError(f"{what or 'exported'} ONNX graph {Path(dst).name} fails onnx.checker: {err}") from err
    dst = Path(dst)
    partial = dst.with_name(dst.name + ".tmp")
    onnx.save(proto, str(partial))
    os.replace(partial, dst)
    return dst


# --------------------------------------------------------------------------- export


def export_semantic_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int],
    precision: str = "fp32",
    calib_frames: npt.NDArray[np.uint8] | None = None,
    max_batch: int = 8,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dynamic_size: bool = False,
    min_agreement: float | None = None,
    check_frames: npt.NDArray[np.uint8] | None = None,
    calibration_method: str = "entropy",
    int8_high_precision: str = "fp16",
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export ``model`` (a torchvision DeepLabV3) as the semantic graph in ``precision``.

    input_size: (height, width) the graph is built and verified for. With
        ``dynamic_size=True`` height and width stay symbolic too (ONNX Runtime serves any
        size; TensorRT builds then need the size given explicitly).
    calib_frames: uint8 (N, H, W, 3) RGB frames at ``input_size`` from the target domain
        (e.g. a recorded drive): required for int8 (calibration; 32-500 frames is typical),
        used for fp16 as AutoCast's reference inputs, and a few of them join the check.
    max_batch: recorded in the metadata as the batch the graph is meant for (the batch axis
        itself is dynamic).
    min_agreement: override the precision's gate in :data:`MIN_AGREEMENT`.
    check_frames: frames for the agreement check (default: varied synthetic frames plus up
        to 4 calibration frames).
    int8_high_precision: dtype of the layers an int8 graph leaves unquantized. "fp16"
        (default) is the TensorRT graph: those layers run fp16 as in fp16 engines. "fp32"
        is for ONNX Runtime, which runs it with its graph optimisations on (see
        :func:`ort_optimizations_safe`).

    Returns the path written. Nothing is written when any step or check fails.
    """
    require_onnx_tools()

    if precision not in PRECISION_CHOICES:
        raise OnnxExportError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
    height, width = (int(v) for v in input_size)
    if height <= 0 or width <= 0:
        raise OnnxExportError(f"input size must be positive, got {input_size}")
    if max_batch < 1:
        raise OnnxExportError(f"max_batch must be >= 1, got {max_batch}")
    if calib_frames is not None:
        calib_frames = _check_frames(calib_frames, (height, width), "calibration frames")
    if precision == "int8" and calib_frames is None:
        raise OnnxExportError(
            "int8 export needs calibration frames (uint8 (N, H, W, 3) at the input size, from the target domain)"
        )
    if int8_high_precision not in ("fp16", "fp32"):
        raise OnnxExportError(f"int8_high_precision must be fp16 or fp32, got {int8_high_precision!r}")
    gate = MIN_AGREEMENT[precision] if min_agreement is None else float(min_agreement)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # The graph always computes both outputs; backends fetch the confidence only when asked.
    head = SemanticHead(
        copy.deepcopy(model).to("cpu", torch.float32),
        None if mean is None else tuple(mean),
        None if std is None else tuple(std),
        with_confidence=True,
    ).eval()
    mean, std = head.normalization()  # what the graph applies; recorded in the ONNX metadata
    if check_frames is None:
        check_frames = verification_frames((height, width), count=4)
        if calib_frames is not None:
            check_frames = np.concatenate([check_frames, calib_frames[:4]])
    check_frames = _check_frames(check_frames, (height, width), "check frames")
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="seg_onnx_") as tmp:
        work = Path(tmp)
        fp32_path = work / "fp32.onnx"
        axes = {0: "batch", 1: "height", 2: "width"} if dynamic_size else {0: "batch"}
        dynamic_axes = {INPUT_NAME: axes, **dict.fromkeys(OUTPUT_NAMES, axes)}
        dummy = torch.from_numpy(check_frames[:1].copy())
        export_fp32_graph(head, dummy, fp32_path, [INPUT_NAME], list(OUTPUT_NAMES), dynamic_axes)

        reference = _run_torch(head, check_frames)
        fp32_agreement = class_agreement(_run_session(_cpu_session(fp32_path), check_frames), reference)
        fp32_gate = MIN_AGREEMENT["fp32"] if precision != "fp32" else gate
        if fp32_agreement < fp32_gate:
            raise OnnxExportError(
                f"fp32 ONNX graph disagrees with torch: {fp32_agreement:.4%} identical pixels < {fp32_gate:.2%}; "
                "refusing to write it"
            )

        final = fp32_path
        if precision == "fp16":
            final = work / "fp16.onnx"
            # AutoCast only needs activation ranges: a few reference frames are enough.
            reference_frames = calib_frames if calib_frames is not None else check_frames
            autocast_fp16(fp32_path, final, reference_frames[:4], work)
        elif precision == "int8":
            assert calib_frames is not None  # int8 without calibration frames was refused above
            final = work / "int8.onnx"
            quantize_int8(fp32_path, final, calib_frames, calibration_method, int8_high_precision)

        agreement = fp32_agreement
        kind = {"precision": precision, "int8_high_precision": int8_high_precision}
        if final is not fp32_path:
            session = _cpu_session(final, optimize=ort_optimizations_safe(kind))
            agreement = class_agreement(_run_session(session, check_frames), reference)
            if agreement < gate:
                raise OnnxExportError(
                    f"{precision} ONNX graph agrees with torch fp32 on only {agreement:.4%} of pixels "
                    f"(< {gate:.2%}); refusing to write it"
                )

        meta = {
            "format": SEMANTIC_GRAPH_FORMAT,
            "precision": precision,
            "input_size": f"{height}x{width}",
            "dynamic_size": str(bool(dynamic_size)).lower(),
            "max_batch": str(max_batch),
            "weights_sha256": weights_fingerprint(model),
            "mean": ",".join(f"{v:.6g}" for v in mean),
            "std": ",".join(f"{v:.6g}" for v in std),
            "agreement_fp32_vs_torch": f"{fp32_agreement:.6f}",
            "agreement_vs_torch_fp32": f"{agreement:.6f}",
            "agreement_gate": f"{gate:.6f}",
            "check_frames": str(len(check_frames)),
            "calibration_frames": str(0 if calib_frames is None else len(calib_frames)),
            "calibration_method": calibration_method if precision == "int8" else "",
            "int8_high_precision": int8_high_precision if precision == "int8" else "",
            **{f"version.{k}": v for k, v in tool_versions().items()},
            **dict(extra_metadata or {}),
        }
        save_with_metadata(final, path, meta, precision)

    log.info(
        "exported %s (%s, %dx%d width x height): %.4f%% pixels agree with torch fp32 (gate %.2f%%), %.1f s",
        path,
        precision,
        width,
        height,
        100 * agreement,
        100 * gate,
        time.perf_counter() - started,
    )
    return path


def export_fp32_graph(
    module: nn.Module,
    dummy: torch.Tensor,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    what: str = "",
) -> None:
    """``module`` as an fp32 ONNX graph at ``path`` (TorchScript exporter, :data:`OPSET`, constant
    folding), traced on ``dummy``; axes named in ``dynamic`` stay symbolic. ``what`` names the
    graph in the error (e.g. " of fp32.backbone")."""
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            names: dict[str, Any] = {"input_names": inputs, "output_names": outputs, "dynamic_axes": dynamic}
            torch.onnx.export(module, (dummy,), str(path), **names, **EXPORTER_OPTIONS)
    except Exception as err:
        # Broad on purpose: the exporter fails with many error types (tracing, ONNX conversion, symbolic functions).
        raise OnnxExportError(f"torch.onnx.export{what} failed: {err}") from err
