"""Build TensorRT engines from the exported semantic ONNX, with a JSON sidecar per engine.

One code path for every TensorRT library the product meets:

* ``tensorrt`` 10.x (>= 10.3; Jetson JetPack 6, DRIVE OS 7) and 11.x (x86 hosts): builds
  for the GPU it runs on.
* ``tensorrt_rtx`` (TensorRT-RTX, ``pip install tensorrt-rtx-cu12``): builds without a GPU
  (ahead of time, for a list of compute capabilities), which is how CI proves that our
  graphs and this code are accepted by a real TensorRT builder.

Precision is in the ONNX graph (AutoCast fp16, Q/DQ int8; see :mod:`.onnx` and
:mod:`.precision`): networks are created strongly typed where the flag exists (10.x, RTX;
TensorRT 11 networks are always strongly typed) and no precision builder flag is ever set,
since TensorRT 11 removed them.

The sidecar (``<engine>.json``) records what an engine is only valid for: library and
version, GPU name and compute capability (or the RTX targets), precision, input shapes,
ONNX and engine sha256. Serving reads and checks it
(:func:`seg_perception.inference.artifacts.check_sidecar`), refusing any mismatch with the
command that rebuilds the engine; engine and sidecar names come from
:mod:`seg_perception.inference.artifacts` too, the library from
:mod:`seg_perception.inference.tensorrt_library`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from seg_perception.config.choices import PRECISION_CHOICES
from seg_perception.export.errors import EngineBuildError, OnnxExportError
from seg_perception.inference.artifacts import (
    INPUT_NAME,
    SIDECAR_FORMAT,
    file_sha256,
    read_onnx_metadata,
    rebuild_command,
    sidecar_path,
)
from seg_perception.inference.instance_split import PARTS, ROI_INPUT
from seg_perception.inference.tensorrt_library import current_gpu, import_tensorrt, make_logger

log = logging.getLogger(__name__)


def _cc_enum(trt: ModuleType, target: str) -> Any:
    """'8.6' | '86' | 'SM86' -> trt.ComputeCapability.SM86."""
    key = target.upper().replace("SM", "").replace("_", "").replace(".", "")
    member = getattr(trt.ComputeCapability, f"SM{key}", None)
    if member is None:
        known = [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
        raise EngineBuildError(f"unknown TensorRT-RTX target {target!r}; this library knows {known}")
    return member


def _cc_text(member: Any) -> str:
    digits = str(member).rsplit(".", 1)[-1].replace("SM", "")
    return f"{digits[:-1]}.{digits[-1]}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _onnx_precision(onnx_path: Path) -> str | None:
    try:
        from seg_perception.inference.artifacts import read_onnx_metadata

        return read_onnx_metadata(onnx_path).get("precision")
    except ImportError:  # onnx not installed: nothing to compare with
        return None


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str,
    *,
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 4,
    input_size: tuple[int, int] | None = None,
    workspace_mb: int = 2048,
    timing_cache: str | Path | None = None,
    rtx_targets: Sequence[str] = (),
    library: str | None = None,
    optimization_level: int | None = None,
    profile: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
    rebuild: str | None = None,
) -> dict[str, Any]:
    """Build ``engine_path`` from ``onnx_path``; write its sidecar; return the sidecar dict.

    precision: the precision the ONNX graph carries (checked against its metadata); it is
        not a builder setting.
    min/opt/max batch: the optimisation profile of the batch axis.
    input_size: (height, width) for graphs exported with a dynamic size; fixed-size graphs
        take theirs from the ONNX.
    timing_cache: file read before and written after the build where the library has a
        timing cache (TensorRT; TensorRT-RTX has none: its timing-cache calls are no-ops).
    rtx_targets: TensorRT-RTX compute capabilities ('8.6', 'SM89', ...); empty = the
        library's portable default (Ampere and later).
    library: 'tensorrt' or 'tensorrt_rtx'; default: the first importable.
    profile: for graphs other than the semantic one (the instance split graphs): input name
        -> (min, opt, max) shapes of the optimisation profile, for every input with a
        dynamic axis; the batch arguments are then only recorded.
    rebuild: the command that rebuilds this engine (sidecar, refusal messages); default:
        the semantic build-engine command.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in PRECISION_CHOICES:
        raise EngineBuildError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
    if not onnx_path.is_file():
        raise EngineBuildError(
            f"ONNX file not found: {onnx_path}; export it: seg-perception export "
            f"--precision {precision} --out {onnx_path}"
        )
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise EngineBuildError(
            f"batch profile must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}"
        )
    graph_precision = _onnx_precision(onnx_path)
    if graph_precision not in (None, precision):
        raise EngineBuildError(
            f"{onnx_path} is a {graph_precision} graph, not {precision}: precision lives in the ONNX graph, "
            f"export it: seg-perception export --precision {precision}"
        )
    lib = import_tensorrt(library)
    trt = lib.module
    if rtx_targets and not lib.is_rtx:
        raise EngineBuildError("rtx_targets apply to tensorrt_rtx only; TensorRT builds for the GPU it runs on")
    gpu = current_gpu()
    if gpu is None and not lib.is_rtx:
        raise EngineBuildError(
            f"{lib.name} {lib.version} builds for the GPU it runs on and torch sees no CUDA GPU; "
            "build on the target machine, or with tensorrt_rtx for RTX GPUs"
        )
    started = time.perf_counter()
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise EngineBuildError(f"{lib.name} {lib.version}: cannot create a builder (CUDA driver or GPU missing?)")
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = 1 << int(strongly_typed) if strongly_typed is not None else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).splitlines()[0] for i in range(parser.num_errors)]
        raise EngineBuildError(f"{lib.name} {lib.version} cannot parse {onnx_path}: " + " | ".join(errors[:3]))
    if profile is None:
        shapes = _semantic_shapes(network, onnx_path, input_size, (min_batch, opt_batch, max_batch))
    else:
        shapes = _profile_shapes(network, onnx_path, profile)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in shapes.items():
        opt_profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt_profile)

    targets: list[str] = []
    if rtx_targets:
        members = [_cc_enum(trt, t) for t in rtx_targets]
        config.num_compute_capabilities = len(members)
        for i, member in enumerate(members):
            config.set_compute_capability(member, i)
        targets = [_cc_text(m) for m in members]

    cache_file = None  # the timing cache, where the library has one
    if timing_cache is not None and not lib.is_rtx and hasattr(config, "create_timing_cache"):
        cache_file = Path(timing_cache)
        blob = cache_file.read_bytes() if cache_file.is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            # A cache from another GPU or version: build without it (slower), and say so.
            log.warning("timing cache %s does not fit this builder; building without it", cache_file)
            cache_file = None

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{lib.name} {lib.version} failed to build {onnx_path} (see the TensorRT log above)")
    data = bytes(memoryview(serialized))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(engine_path, data)
    seconds = time.perf_counter() - started

    import hashlib

    batch = (min_batch, opt_batch, max_batch)
    inputs = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        lo, mid, hi = shapes.get(tensor.name, (tuple(tensor.shape),) * 3)
        inputs.append(
            {
                "name": tensor.name,
                "dtype": _dtype_name(tensor.dtype),
                "min": list(lo),
                "opt": list(mid),
                "max": list(hi),
            }
        )
    outputs = [
        {
            "name": network.get_output(i).name,
            "dtype": str(network.get_output(i).dtype).rsplit(".", 1)[-1],
            "shape": list(network.get_output(i).shape),
        }
        for i in range(network.num_outputs)
    ]
    sidecar: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "library": lib.name,
        "library_version": lib.version,
        "gpu": None if gpu is None or lib.is_rtx else {"name": gpu.name, "compute_capability": gpu.cc},
        "build_gpu": None if gpu is None else {"name": gpu.name, "compute_capability": gpu.cc},
        "rtx_targets": targets if lib.is_rtx else None,  # [] = library default: Ampere and later
        "precision": precision,
        "strongly_typed": strongly_typed is not None,
        "input": inputs[0],
        "inputs": inputs,
        "outputs": outputs,
        "onnx": {"path": str(onnx_path), "sha256": file_sha256(onnx_path), "bytes": onnx_path.stat().st_size},
        "engine": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
        "workspace_mb": int(workspace_mb),
        "timing_cache": str(timing_cache) if cache_file is not None else None,
        "build_seconds": round(seconds, 3),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "rebuild_command": rebuild or rebuild_command(onnx_path, engine_path, precision, batch, lib.name, targets),
    }
    _atomic_write(sidecar_path(engine_path), (json.dumps(sidecar, indent=2) + "\n").encode())
    if cache_file is not None:  # after the sidecar: a cache that cannot be written costs only time
        _save_timing_cache(config, cache_file)
    log.info(
        "built %s (%s, %s %s) in %.1f s, %.1f MB",
        engine_path,
        precision,
        lib.name,
        lib.version,
        seconds,
        len(data) / 1e6,
    )
    return sidecar


def _save_timing_cache(config: Any, path: Path) -> None:
    """Best effort: the engine and its sidecar are written already."""
    try:
        cache = config.get_timing_cache()
        _atomic_write(path, bytes(memoryview(cache.serialize())))
    except (OSError, AttributeError) as err:
        log.warning("cannot write the timing cache %s (%s); the next build starts without it", path, err)


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).rsplit(".", 1)[-1]
    return {"UINT8": "uint8", "FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64"}.get(name, name)


def _semantic_shapes(
    network: Any, onnx_path: Path, input_size: tuple[int, int] | None, batch: Sequence[int]
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Profile of the semantic graph: one uint8 input ``frames`` (N, H, W, 3), N dynamic."""
    if network.num_inputs != 1 or network.get_input(0).name != INPUT_NAME:
        names = [network.get_input(i).name for i in range(network.num_inputs)]
        raise EngineBuildError(
            f"{onnx_path} has inputs {names}; expected one input {INPUT_NAME!r} (other graphs need an explicit profile)"
        )
    dims = list(network.get_input(0).shape)  # (N, H, W, 3), N = -1
    if len(dims) != 4 or dims[3] != 3:
        raise EngineBuildError(f"{onnx_path} input {INPUT_NAME} has shape {dims}; expected (N, H, W, 3)")
    if dims[1] < 0 or dims[2] < 0:
        if input_size is None:
            raise EngineBuildError(f"{onnx_path} has a dynamic height/width: give input_size=(height, width)")
        dims[1], dims[2] = input_size
    elif input_size is not None and tuple(input_size) != (dims[1], dims[2]):
        raise EngineBuildError(
            f"{onnx_path} is fixed at {dims[2]}x{dims[1]}, input_size asks {input_size[1]}x{input_size[0]}"
        )
    lo, mid, hi = ((b, dims[1], dims[2], 3) for b in batch)
    return {INPUT_NAME: (lo, mid, hi)}


def _profile_shapes(
    network: Any, onnx_path: Path, profile: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Check an explicit profile against the network's inputs: every dynamic input named,
    ranks equal, fixed axes unchanged, min <= opt <= max."""
    shapes = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if tensor.name not in profile:
            if any(d < 0 for d in dims):
                raise EngineBuildError(
                    f"{onnx_path} input {tensor.name} has dynamic axes {dims}: the profile must name it"
                )
            continue
        lo, mid, hi = (tuple(int(v) for v in s) for s in profile[tensor.name])
        for shape in (lo, mid, hi):
            if len(shape) != len(dims) or any(d >= 0 and d != v for d, v in zip(dims, shape)):
                raise EngineBuildError(
                    f"profile shape {list(shape)} does not fit {onnx_path} input {tensor.name} {dims}"
                )
        if not all(a <= b <= c for a, b, c in zip(lo, mid, hi)) or min(lo) < 1:
            raise EngineBuildError(f"profile of {tensor.name} must satisfy 1 <= min <= opt <= max: {lo} / {mid} / {hi}")
        shapes[tensor.name] = (lo, mid, hi)
    unknown = set(profile) - {network.get_input(i).name for i in range(network.num_inputs)}
    if unknown:
        raise EngineBuildError(f"{onnx_path} has no inputs {sorted(unknown)}")
    return shapes


def build_instance_engines(
    onnx_paths: Mapping[str, str | Path],
    engine_paths: Mapping[str, str | Path],
    precision: str,
    *,
    opt_batch: int = 1,
    max_batch: int = 4,
    max_rois: int | None = None,
    max_detections: int | None = None,
    workspace_mb: int = 2048,
    timing_cache: str | Path | None = None,
    rtx_targets: Sequence[str] = (),
    library: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Build the three split graphs into engines (each with its JSON sidecar).

    Profiles: ``frames`` (1..max_batch, H, W, 3) for the backbone; ``roi_features`` of the box
    head up to ``max_rois`` RoIs (default: the RPN's post-NMS count x max_batch) and of the
    mask head up to ``max_detections`` (default: detections_per_img x max_batch), the numbers
    recorded in the ONNX metadata at export. Returns part -> sidecar.
    """

    missing = [str(onnx_paths[part]) for part in PARTS if not Path(onnx_paths[part]).is_file()]
    if missing:
        raise EngineBuildError(
            f"instance split graphs not found: {', '.join(missing)}; export them: "
            f"seg-perception export --model instance --precision {precision}"
        )
    meta = read_onnx_metadata(onnx_paths["backbone"])
    if not str(meta.get("format", "")).startswith("seg_perception.instance_"):
        raise OnnxExportError(
            f"{onnx_paths['backbone']} is not an instance split graph; export it: "
            f"seg-perception export --model instance --precision {precision}"
        )
    height, _, width = meta["input_size"].partition("x")
    h, w, c = int(height), int(width), int(meta["roi_channels"])
    post_nms, dets = int(meta["rpn_post_nms_top_n"]), int(meta["detections_per_img"])
    max_rois = max_rois or post_nms * max_batch
    max_detections = max_detections or dets * max_batch
    profiles = {
        "backbone": {INPUT_NAME: ((1, h, w, 3), (opt_batch, h, w, 3), (max_batch, h, w, 3))},
        "box_head": {ROI_INPUT: ((1, c, 7, 7), (min(post_nms * opt_batch, max_rois), c, 7, 7), (max_rois, c, 7, 7))},
        "mask_head": {
            ROI_INPUT: ((1, c, 14, 14), (min(dets * opt_batch, max_detections), c, 14, 14), (max_detections, c, 14, 14))
        },
    }
    rebuild = (
        f"seg-perception build-engine --model instance --precision {precision} "
        f"--engines-dir {Path(engine_paths['backbone']).parent} --opt-batch {opt_batch} "
        f"--max-batch {max_batch}"
        + (f" --library {library}" if library else "")
        + "".join(f" --rtx-target {t}" for t in rtx_targets)
    )
    # The three graphs share every build setting but their profile.
    build = functools.partial(
        build_engine,
        precision=precision,
        min_batch=1,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_mb=workspace_mb,
        timing_cache=timing_cache,
        rtx_targets=rtx_targets,
        library=library,
        rebuild=rebuild,
    )
    return {part: build(onnx_paths[part], engine_paths[part], profile=profiles[part]) for part in PARTS}
