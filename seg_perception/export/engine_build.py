"""Build TensorRT engines from the exported semantic ONNX, with a JSON sidecar per engine.

One code path for every TensorRT library the product meets:

* ``tensorrt`` 10.x (>= 10.3; Jetson JetPack 6, DRIVE OS 7) and 11.x (x86 hosts): builds
  for the GPU it runs on.
* ``tensorrt_rtx`` (TensorRT-RTX, ``pip install tensorrt-rtx-cu12``): builds without a GPU
  (ahead of time, for a list of compute capabilities), which is how CI proves that our
  graphs and this code are accepted by a real TensorRT builder.

Precision is in the ONNX graph (AutoCast fp16, Q/DQ int8; see :mod:`.onnx_export`):
networks are created strongly typed where the flag exists (10.x, RTX; TensorRT 11 networks
are always strongly typed) and no precision builder flag is ever set, since TensorRT 11
removed them.

The sidecar (``<engine>.json``) records what an engine is only valid for: library and
version, GPU name and compute capability (or the RTX targets), precision, input shapes,
ONNX and engine sha256. :func:`check_sidecar` refuses any mismatch with the command that
rebuilds the engine.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from seg_perception.errors import BackendError
from seg_perception.export.onnx import INPUT_NAME, file_sha256
from seg_perception.inference.base import PRECISION_CHOICES

log = logging.getLogger(__name__)

LIBRARIES = ("tensorrt", "tensorrt_rtx")
SIDECAR_FORMAT = 1
TRT_INSTALL = (
    "install TensorRT: pip install tensorrt (GPU hosts; JetPack/DRIVE OS ship it) "
    "or pip install tensorrt-rtx-cu12==1.7.1.116 (builds without a GPU)"
)
# TensorRT-RTX builds, when no target is named, engines portable to Ampere and later.
RTX_DEFAULT_MIN_CC = (8, 0)


class EngineBuildError(BackendError):
    """An engine could not be built."""


class SidecarMismatch(BackendError):
    """An engine does not match this machine, its ONNX or the requested precision."""


@dataclass(frozen=True)
class TrtLibrary:
    module: ModuleType
    name: str  # "tensorrt" | "tensorrt_rtx"
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt_rtx"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def import_tensorrt(library: str | None = None) -> TrtLibrary:
    """The TensorRT library to use: ``library`` when named, else tensorrt, else tensorrt_rtx."""
    names = (library,) if library else LIBRARIES
    for name in names:
        if name not in LIBRARIES:
            raise BackendError(f"unknown TensorRT library {name!r}; expected one of {list(LIBRARIES)}")
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        except Exception as err:
            raise BackendError(f"{name} is installed but cannot be loaded: {err}") from err
        return TrtLibrary(module, name, str(getattr(module, "__version__", "unknown")))
    raise BackendError(f"no TensorRT library ({' or '.join(names)}) is importable: {TRT_INSTALL}")


def current_gpu(index: int = 0) -> GpuInfo | None:
    """The CUDA GPU torch sees at ``index``, or None without one."""
    import torch

    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    return GpuInfo(torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))


def artifact_paths(
    engines_dir: str | Path, model: str, input_size: tuple[int, int], precision: str
) -> tuple[Path, Path]:
    """Where the export and the engine of one (model, input size, precision) live:
    ``<engines_dir>/<model>_<H>x<W>_<precision>.onnx`` and ``.engine`` (sidecar:
    ``.engine.json``). Engines are per machine and never committed (.gitignore)."""
    stem = f"{model}_{input_size[0]}x{input_size[1]}_{precision}"
    base = Path(engines_dir)
    return base / f"{stem}.onnx", base / f"{stem}.engine"


def make_logger(trt: ModuleType) -> Any:
    """A TensorRT logger feeding Python logging: errors as errors, each distinct warning once
    (TensorRT repeats some per layer), the rest at debug level."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.seen: set[str] = set()

        def log(self, severity: Any, msg: str) -> None:
            level = str(severity).rsplit(".", 1)[-1]
            if level in ("INTERNAL_ERROR", "ERROR"):
                log.error("[%s] %s", trt.__name__, msg)
            elif level == "WARNING" and msg not in self.seen:
                self.seen.add(msg)
                log.warning("[%s] %s", trt.__name__, msg)
            else:
                log.debug("[%s] %s", trt.__name__, msg)

    return _Logger()


def sidecar_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


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


def rebuild_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str,
    batch: Sequence[int],
    library: str,
    rtx_targets: Sequence[str] = (),
) -> str:
    cmd = (
        f"seg-perception build-engine --onnx {onnx_path} --engine {engine_path} --precision {precision} "
        f"--min-batch {batch[0]} --opt-batch {batch[1]} --max-batch {batch[2]} --library {library}"
    )
    return cmd + "".join(f" --rtx-target {t}" for t in rtx_targets)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _onnx_precision(onnx_path: Path) -> str | None:
    try:
        from seg_perception.export.onnx import read_onnx_metadata

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

    cache = None
    use_timing_cache = timing_cache is not None and not lib.is_rtx and hasattr(config, "create_timing_cache")
    if use_timing_cache:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{lib.name} {lib.version} failed to build {onnx_path} (see the TensorRT log above)")
    data = bytes(memoryview(serialized))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(engine_path, data)
    if use_timing_cache:
        _atomic_write(Path(timing_cache), bytes(memoryview(config.get_timing_cache().serialize())))
    seconds = time.perf_counter() - started

    import hashlib

    batch = (min_batch, opt_batch, max_batch)
    inputs = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        lo, mid, hi = shapes.get(tensor.name, (list(tensor.shape),) * 3)
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
        "timing_cache": str(timing_cache) if use_timing_cache else None,
        "build_seconds": round(seconds, 3),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "rebuild_command": rebuild or rebuild_command(onnx_path, engine_path, precision, batch, lib.name, targets),
    }
    _atomic_write(sidecar_path(engine_path), (json.dumps(sidecar, indent=2) + "\n").encode())
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


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SidecarMismatch(
            f"engine {engine_path} has no sidecar {path.name}; rebuild it: seg-perception build-engine "
            f"--engine {engine_path} ..."
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SidecarMismatch(f"engine sidecar {path} is unreadable ({err}); rebuild the engine") from err
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise SidecarMismatch(f"engine sidecar {path} has an unknown format; rebuild the engine")
    return data


_CURRENT = object()


def check_sidecar(
    engine_path: str | Path,
    onnx_path: str | Path | None,
    precision: str,
    *,
    gpu: GpuInfo | object | None = _CURRENT,
    library: TrtLibrary | None = None,
) -> dict[str, Any]:
    """Refuse an engine that does not fit: one-line :class:`SidecarMismatch` with the rebuild
    command. Returns the sidecar when everything matches.

    Checks: engine file matches its sidecar (sha256); precision; ONNX sha256 (when
    ``onnx_path`` is given: the engine must come from that exact graph); library name and
    version importable here; GPU: for TensorRT the same GPU name and compute capability, for
    TensorRT-RTX a compute capability among the targets. ``gpu`` defaults to the current
    CUDA device; where none is visible (CI, build hosts) the GPU check is skipped, since
    nothing can run there anyway. ``library`` overrides the import (tests).
    """
    engine_path = Path(engine_path)
    side = read_sidecar(engine_path)
    cmd = side.get("rebuild_command") or "seg-perception build-engine ..."

    def refuse(reason: str) -> SidecarMismatch:
        return SidecarMismatch(f"engine {engine_path} {reason}; rebuild it: {cmd}")

    if not engine_path.is_file():
        raise refuse("does not exist")
    recorded = side.get("engine") or {}
    if engine_path.stat().st_size != recorded.get("bytes") or file_sha256(engine_path) != recorded.get("sha256"):
        raise refuse("does not match its sidecar (engine file replaced or corrupted)")
    if side.get("precision") != precision:
        raise refuse(f"is {side.get('precision')}, {precision} was asked for")
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise refuse(f"was built from {onnx_path}, which does not exist")
        if file_sha256(onnx_path) != side.get("onnx", {}).get("sha256"):
            raise refuse(f"was built from another ONNX graph than {onnx_path} (sha256 differs)")
    name, version = side.get("library"), side.get("library_version")
    if library is None:
        try:
            library = import_tensorrt(name)
        except BackendError:
            raise refuse(f"was built with {name} {version}, which is not installed here") from None
    if library.name != name or library.version != version:
        raise refuse(f"was built with {name} {version}, this machine has {library.name} {library.version}")
    if gpu is _CURRENT:
        gpu = current_gpu()
    if gpu is not None:
        assert isinstance(gpu, GpuInfo)
        if name == "tensorrt_rtx":
            targets = side.get("rtx_targets") or []
            if targets and gpu.cc not in targets:
                raise refuse(f"targets compute capability {', '.join(targets)}, this GPU ({gpu.name}) is {gpu.cc}")
            if not targets and gpu.compute_capability < RTX_DEFAULT_MIN_CC:
                raise refuse(f"targets Ampere and later (default), this GPU ({gpu.name}) is {gpu.cc}")
        else:
            built = side.get("gpu") or {}
            if (built.get("name"), built.get("compute_capability")) != (gpu.name, gpu.cc):
                raise refuse(
                    f"was built for {built.get('name')} (compute capability {built.get('compute_capability')}), "
                    f"this GPU is {gpu.name} ({gpu.cc})"
                )
    return side
