"""The TensorRT library this process can load (``tensorrt`` 10.x/11.x or ``tensorrt_rtx``), the
GPU it would run on, and a logger that feeds Python logging. Shared by the runtime backend,
the engine policy and the engine builds.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from seg_perception.errors import BackendError

log = logging.getLogger(__name__)


LIBRARIES = ("tensorrt", "tensorrt_rtx")


TRT_INSTALL = (
    "install TensorRT: pip install tensorrt (GPU hosts; JetPack/DRIVE OS ship it) "
    "or pip install tensorrt-rtx-cu12==1.7.1.116 (builds without a GPU)"
)


# The compute capabilities TensorRT-RTX runs engines on (its support matrix, 1.0-1.7): Turing
# 7.5, Ampere 8.6, Ada 8.9, Blackwell 12.x. Not 8.0 (A100) nor 9.0 (H100/H200): data-centre
# GPUs need TensorRT proper. An allow-list, not ">= 8.0", so a new data-centre GPU is refused
# with a clear line instead of failing inside the runtime.
RTX_SUPPORTED_CC = ("7.5", "8.6", "8.9", "12.x")
# What an engine built without a named target runs on ("portable across 8.6, 8.9 and 12.0";
# Turing only when SM75 is named at build time).
RTX_DEFAULT_CC = ("8.6", "8.9", "12.x")


def rtx_cc_matches(cc: str, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether compute capability ``cc`` ("8.6") is in ``allowed`` ("12.x" = any 12.y)."""
    major = cc.split(".", 1)[0]
    return any(a == cc or (a.endswith(".x") and a.split(".", 1)[0] == major) for a in allowed)


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
            # Broad on purpose: an installed but broken library fails to load in many ways (shared libraries, CUDA).
            raise BackendError(f"{name} is installed but cannot be loaded: {err}") from err
        return TrtLibrary(module, name, str(getattr(module, "__version__", "unknown")))
    raise BackendError(f"no TensorRT library ({' or '.join(names)}) is importable: {TRT_INSTALL}")


def current_gpu(index: int | None = None) -> GpuInfo | None:
    """The CUDA GPU torch sees at ``index`` (default: torch's current device, the one
    TensorRT builds for and runs on, not always 0), or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    if index is None:
        index = torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        return None
    return GpuInfo(torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index))


_LOGGERS: dict[str, Any] = {}


def make_logger(trt: Any) -> Any:
    """The TensorRT logger of library ``trt`` (:attr:`TrtLibrary.module`), feeding Python
    logging: errors as errors, each distinct warning once (TensorRT repeats some per layer),
    the rest at debug level. One per library and process: TensorRT keeps the first logger a
    builder or runtime was created with and ignores later ones (its docs: "the logger must
    be the same for all builders and runtimes"). Returns a ``trt.ILogger``."""
    name = str(getattr(trt, "__name__", "tensorrt"))
    if name not in _LOGGERS:
        _LOGGERS[name] = _new_logger(trt)
    return _LOGGERS[name]


def _new_logger(trt: Any) -> Any:

    # TensorRT ships no type information, so its ILogger is Any to mypy; a logger must
    # subclass it (TensorRT calls back into the Python override of ``log``).
    class _Logger(trt.ILogger):  # type: ignore[misc]
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


def engine_validity_problem(lib: TrtLibrary, runtime: Any, data: bytes) -> str | None:
    """TensorRT-RTX only: why the serialised engine ``data`` cannot run here, from its header
    (``IRuntime.get_engine_validity``, no deserialisation), or None when it is valid (or
    merely suboptimal, logged) or the library has no such check (TensorRT 10.x/11.x)."""
    check = getattr(runtime, "get_engine_validity", None)
    if not lib.is_rtx or check is None:
        return None
    validity, diagnostics = check(data)
    state = str(validity).rsplit(".", 1)[-1]
    if state == "VALID":
        return None
    flags = lib.module.EngineInvalidityDiagnostics.__members__
    reasons = [name for name, member in flags.items() if int(diagnostics) & int(member)]
    if state == "SUBOPTIMAL":
        log.warning("%s: the engine runs here but may be slow (%s)", lib.name, ", ".join(reasons) or "no detail")
        return None
    return f"{lib.name} {lib.version} says the engine is invalid here ({', '.join(reasons) or 'no GPU or driver?'})"
