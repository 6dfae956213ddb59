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
(``seg_perception.*`` keys, read back with :func:`read_onnx_metadata`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seg_perception.errors import BackendError
from seg_perception.inference.base import PRECISION_CHOICES
from seg_perception.models.semantic import SemanticHead

log = logging.getLogger(__name__)

INPUT_NAME = "frames"
OUTPUT_NAMES = ("class_ids", "confidence")
OPSET = 17
GRAPH_FORMAT = "seg_perception.semantic_head/1"
META_PREFIX = "seg_perception."

# Pixel agreement of the exported graph's class maps with torch fp32, per precision. fp32 must
# be exact up to float reordering. fp16 and int8 gates catch broken graphs (a wrong cast, a
# collapsed range); they are not accuracy claims: a trained model agrees far better than an
# untrained one, whose logits are nearly tied everywhere.
MIN_AGREEMENT: dict[str, float] = {"fp32": 0.999, "fp16": 0.99, "int8": 0.90}

ACCEL_INSTALL = "pip install -r requirements-accel.txt"


class OnnxExportError(BackendError):
    """An ONNX export failed or did not pass its verification."""


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


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes, values): identifies the
    weights an ONNX file was exported from, whatever checkpoint file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verification_frames(input_size: tuple[int, int], count: int = 4, seed: int = 0) -> np.ndarray:
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


def class_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose class ids are equal."""
    if a.shape != b.shape:
        raise OnnxExportError(f"class maps differ in shape: {a.shape} vs {b.shape}")
    return float((a == b).mean())


_THREAD_LIMIT = 0  # set_cpu_threads; 0 = no limit


def cpu_threads() -> int:
    """Threads for CPU inference: the cores this process may run on (the affinity mask, not
    the machine's core count), or fewer after :func:`set_cpu_threads`."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    return min(cores, _THREAD_LIMIT) if _THREAD_LIMIT else cores


def set_cpu_threads(threads: int) -> None:
    """Limit CPU inference of this process to ``threads`` threads (0: one per core): torch's
    intra-op pool now, ONNX Runtime sessions created from now on, so several nodes on one
    machine can share its cores (the ``cpu_threads`` node parameter)."""
    global _THREAD_LIMIT
    import torch

    _THREAD_LIMIT = max(0, int(threads))
    torch.set_num_threads(cpu_threads())


def ort_optimizations_safe(meta: Mapping[str, str]) -> bool:
    """Whether ONNX Runtime's graph optimisations compute this graph correctly.

    ONNX Runtime 1.24.4 (CPU) miscomputes Q/DQ graphs whose unquantized parts are fp16 once
    any graph optimisation is on (ORT_ENABLE_BASIC already): DeepLabV3-MobileNetV3 collapses
    to one class, while the same file with optimisations off agrees with torch. Such graphs
    (int8 exported for TensorRT) run in ONNX Runtime with optimisations off.
    """
    return not (meta.get("precision") == "int8" and meta.get("int8_high_precision", "fp32") == "fp16")


def _cpu_session(path: str | Path, optimize: bool = True):  # noqa: ANN202 - onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    level = "ORT_ENABLE_ALL" if optimize else "ORT_DISABLE_ALL"
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.intra_op_num_threads = cpu_threads()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _run_session(session, frames: np.ndarray, batch: int = 4) -> np.ndarray:  # noqa: ANN001
    out = [session.run([OUTPUT_NAMES[0]], {INPUT_NAME: frames[i : i + batch]})[0] for i in range(0, len(frames), batch)]
    return np.concatenate(out)


@torch.inference_mode()
def _run_torch(head: nn.Module, frames: np.ndarray, batch: int = 4) -> np.ndarray:
    out = [head(torch.from_numpy(frames[i : i + batch]))[0].numpy() for i in range(0, len(frames), batch)]
    return np.concatenate(out)


def _check_frames(frames: np.ndarray, input_size: tuple[int, int], what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise OnnxExportError(f"{what} must be a non-empty uint8 array (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if tuple(frames.shape[1:3]) != tuple(input_size):
        raise OnnxExportError(
            f"{what} are {frames.shape[2]}x{frames.shape[1]} (width x height), the export input size is "
            f"{input_size[1]}x{input_size[0]}: resize them first (pipeline.preprocess.resize_batch)"
        )
    return np.ascontiguousarray(frames)


def load_calibration_frames(source: str | Path, input_size: tuple[int, int], limit: int = 256) -> np.ndarray:
    """Calibration frames from a ``.npy`` (N, H, W, 3) uint8 RGB array or a folder of images
    (png/jpg, read as BGR and converted), resized to ``input_size`` = (height, width), at
    most ``limit`` of them (evenly spaced over the source)."""
    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.pipeline.preprocess import resize_batch

    src = Path(source)
    if src.is_file() and src.suffix == ".npy":
        frames = np.load(src, mmap_mode="r")
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise OnnxExportError(f"{src} holds {frames.dtype} {frames.shape}; expected uint8 (N, H, W, 3) RGB")
        pick = np.linspace(0, len(frames) - 1, min(limit, len(frames))).round().astype(int)
        images = [DecodedImage(np.ascontiguousarray(frames[i]), ColorOrder.RGB) for i in pick]
    elif src.is_dir():
        import cv2

        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise OnnxExportError(f"no png/jpg images under {src}")
        pick = np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)
        images = []
        for i in dict.fromkeys(pick.tolist()):
            bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OnnxExportError(f"cannot read calibration image {files[i]}")
            images.append(DecodedImage(bgr, ColorOrder.BGR))
    else:
        raise OnnxExportError(f"calibration source {src} is neither a .npy file nor a folder of images")
    return resize_batch(images, input_size)


def bag_calibration_frames(
    bag: str | Path, input_size: tuple[int, int], limit: int = 256, topic: str | None = None
) -> np.ndarray:
    """Calibration frames from a rosbag2 (sqlite3 or mcap) camera topic: ``sensor_msgs/Image``
    or ``CompressedImage``, at most ``limit`` evenly spaced over the recording, resized to
    ``input_size`` = (height, width) as the pipeline does. ``topic`` default: the bag's only
    camera topic (bag reading: :mod:`seg_perception.io.bags`, as replay does)."""
    from seg_perception.io.bags import COMPRESSED, camera_connections, deserialize, open_bag, read_messages
    from seg_perception.io.image import decode_compressed, decode_image
    from seg_perception.pipeline.preprocess import resize_batch

    reader = open_bag(bag)
    try:
        cameras = camera_connections(reader, [topic] if topic else ())
        total = sum(c.msgcount for c in cameras)
        pick = set(np.linspace(0, total - 1, min(limit, total)).round().astype(int).tolist()) if total else set()
        images = []
        for i, (conn, _, raw) in enumerate(read_messages(reader, cameras)):
            if i in pick:
                msg = deserialize(raw, conn.msgtype)
                images.append(decode_compressed(msg) if conn.msgtype == COMPRESSED else decode_image(msg))
    finally:
        reader.close()
    if not images:
        raise OnnxExportError(f"bag {bag}: camera topic {cameras[0].topic} has no messages")
    return resize_batch(images, input_size)


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``seg_perception.*`` metadata of an exported file (prefix stripped); {} for others."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


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


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import modelopt

        versions["modelopt"] = modelopt.__version__
    except ImportError:
        pass
    return versions


# --------------------------------------------------------------------------- precision passes


def _autocast_fp16(
    src: Path, dst: Path, reference_frames: np.ndarray | Mapping[str, np.ndarray], workdir: Path
) -> None:
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
    inputs = dict(reference_frames) if isinstance(reference_frames, Mapping) else {INPUT_NAME: reference_frames}
    np.savez(npz, **inputs)
    try:
        converted = convert_to_mixed_precision(
            onnx_path=str(src), low_precision_type="fp16", keep_io_types=True, calibration_data=str(npz)
        )
    except Exception as err:
        raise OnnxExportError(f"ModelOpt AutoCast fp16 conversion failed: {err}") from err
    onnx.save(converted, str(dst))


def _quantize_int8(
    src: Path, dst: Path, calib_frames: np.ndarray | Mapping[str, np.ndarray], method: str, high_precision: str
) -> None:
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
        raise OnnxExportError(f"ModelOpt int8 quantization failed: {err}") from err
    if not dst.is_file():
        raise OnnxExportError(f"ModelOpt int8 quantization wrote no file at {dst}")


# --------------------------------------------------------------------------- export


def export_semantic_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int],
    precision: str = "fp32",
    calib_frames: np.ndarray | None = None,
    max_batch: int = 8,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dynamic_size: bool = False,
    min_agreement: float | None = None,
    check_frames: np.ndarray | None = None,
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
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    head,
                    (dummy,),
                    str(fp32_path),
                    dynamo=False,
                    opset_version=OPSET,
                    input_names=[INPUT_NAME],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_axes=dynamic_axes,
                    do_constant_folding=True,
                )
        except Exception as err:
            raise OnnxExportError(f"torch.onnx.export failed: {err}") from err

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
            _autocast_fp16(fp32_path, final, reference_frames[:4], work)
        elif precision == "int8":
            final = work / "int8.onnx"
            _quantize_int8(fp32_path, final, calib_frames, calibration_method, int8_high_precision)

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
            "format": GRAPH_FORMAT,
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
            **{f"version.{k}": v for k, v in _versions().items()},
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


def onnx_metadata_matches(path: str | Path, model: nn.Module | None, precision: str) -> str | None:
    """Why the ONNX file at ``path`` cannot serve ``model`` in ``precision`` (None = it can)."""
    p = Path(path)
    if not p.is_file():
        return f"{p} does not exist"
    meta = read_onnx_metadata(p)
    if meta.get("format") != GRAPH_FORMAT:
        return f"{p} was not exported by seg_perception (format {meta.get('format')!r})"
    if meta.get("precision") != precision:
        return f"{p} is a {meta.get('precision')} graph, {precision} was asked for"
    if model is not None and meta.get("weights_sha256") != weights_fingerprint(model):
        return f"{p} was exported from other weights than the model being served"
    return None


def describe(meta: Mapping[str, Any]) -> str:
    """One-line summary of :func:`read_onnx_metadata` output for logs and CLI output."""
    height, _, width = str(meta.get("input_size", "?x?")).partition("x")
    return (
        f"{meta.get('precision')} {width}x{height} (width x height), agreement with torch fp32 "
        f"{float(meta.get('agreement_vs_torch_fp32', 'nan')):.4%}"
        f" (gate {float(meta.get('agreement_gate', 'nan')):.2%}), calibration frames {meta.get('calibration_frames')}"
    )
