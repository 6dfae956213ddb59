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


# TensorRT-RTX builds, when no target is named, engines portable to Ampere and later.
RTX_DEFAULT_MIN_CC = (8, 0)


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


def current_gpu(index: int = 0) -> GpuInfo | None:
    """The CUDA GPU torch sees at ``index``, or None without one."""
    import torch

    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    return GpuInfo(torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index))


def make_logger(trt: Any) -> Any:
    """A TensorRT logger feeding Python logging: errors as errors, each distinct warning once
    (TensorRT repeats some per layer), the rest at debug level. ``trt``: the library module
    (:attr:`TrtLibrary.module`); returns a ``trt.ILogger``."""

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
