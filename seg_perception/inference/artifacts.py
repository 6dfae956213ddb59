"""What serving knows about the files export makes: where they live, what an exported graph
is called inside, and whether a file fits the weights, precision and machine being served.

The files are made by :mod:`seg_perception.export` (commands and the background build);
this module only names, reads and checks them, so a node never loads the export tools.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seg_perception.errors import BackendError
from seg_perception.inference.tensorrt_library import (
    RTX_DEFAULT_CC,
    RTX_SUPPORTED_CC,
    GpuInfo,
    TrtLibrary,
    current_gpu,
    import_tensorrt,
    rtx_cc_matches,
)

INPUT_NAME = "frames"


OUTPUT_NAMES = ("class_ids", "confidence")


SEMANTIC_GRAPH_FORMAT = "seg_perception.semantic_head/1"


META_PREFIX = "seg_perception."


ACCEL_INSTALL = "pip install -r requirements-accel.txt"


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


def ort_optimizations_safe(meta: Mapping[str, str]) -> bool:
    """Whether ONNX Runtime's graph optimisations compute this graph correctly.

    ONNX Runtime 1.24.4 (CPU) miscomputes Q/DQ graphs whose unquantized parts are fp16 once
    any graph optimisation is on (ORT_ENABLE_BASIC already): DeepLabV3-MobileNetV3 collapses
    to one class, while the same file with optimisations off agrees with torch. Such graphs
    (int8 exported for TensorRT) run in ONNX Runtime with optimisations off.
    """
    return not (meta.get("precision") == "int8" and meta.get("int8_high_precision", "fp32") == "fp16")


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``seg_perception.*`` metadata of an exported file (prefix stripped); {} for others."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def onnx_metadata_matches(path: str | Path, model: nn.Module | None, precision: str) -> str | None:
    """Why the ONNX file at ``path`` cannot serve ``model`` in ``precision`` (None = it can)."""
    p = Path(path)
    if not p.is_file():
        return f"{p} does not exist"
    meta = read_onnx_metadata(p)
    if meta.get("format") != SEMANTIC_GRAPH_FORMAT:
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


SIDECAR_FORMAT = 1


class SidecarMismatchError(BackendError):
    """An engine does not match this machine, its ONNX or the requested precision."""


def artifact_paths(
    engines_dir: str | Path, model: str, input_size: tuple[int, int], precision: str
) -> tuple[Path, Path]:
    """Where the export and the engine of one (model, input size, precision) live:
    ``<engines_dir>/<model>_<H>x<W>_<precision>.onnx`` and ``.engine`` (sidecar:
    ``.engine.json``). Engines are per machine and never committed (.gitignore)."""
    stem = f"{model}_{input_size[0]}x{input_size[1]}_{precision}"
    base = Path(engines_dir)
    return base / f"{stem}.onnx", base / f"{stem}.engine"


def sidecar_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


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


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SidecarMismatchError(
            f"engine {engine_path} has no sidecar {path.name}; rebuild it: seg-perception build-engine "
            f"--engine {engine_path} ..."
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SidecarMismatchError(f"engine sidecar {path} is unreadable ({err}); rebuild the engine") from err
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise SidecarMismatchError(f"engine sidecar {path} has an unknown format; rebuild the engine")
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
    """Refuse an engine that does not fit: one-line :class:`SidecarMismatchError` with the rebuild
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

    def refuse(reason: str) -> SidecarMismatchError:
        return SidecarMismatchError(f"engine {engine_path} {reason}; rebuild it: {cmd}")

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
            if not rtx_cc_matches(gpu.cc, RTX_SUPPORTED_CC):
                raise SidecarMismatchError(
                    f"engine {engine_path} is a TensorRT-RTX engine, and TensorRT-RTX does not run on this GPU "
                    f"({gpu.name}, compute capability {gpu.cc}; it runs on {', '.join(RTX_SUPPORTED_CC)}); "
                    "install TensorRT (pip install tensorrt) and rebuild it: "
                    + re.sub(r" --(library|rtx-target) \S+", "", cmd)
                    + " --library tensorrt"
                )
            if targets and gpu.cc not in targets:
                raise refuse(f"targets compute capability {', '.join(targets)}, this GPU ({gpu.name}) is {gpu.cc}")
            if not targets and not rtx_cc_matches(gpu.cc, RTX_DEFAULT_CC):
                raise refuse(
                    f"targets the default compute capabilities {', '.join(RTX_DEFAULT_CC)}, "
                    f"this GPU ({gpu.name}) is {gpu.cc} (name it: --rtx-target {gpu.cc})"
                )
        else:
            built = side.get("gpu") or {}
            if (built.get("name"), built.get("compute_capability")) != (gpu.name, gpu.cc):
                raise refuse(
                    f"was built for {built.get('name')} (compute capability {built.get('compute_capability')}), "
                    f"this GPU is {gpu.name} ({gpu.cc})"
                )
    return side
