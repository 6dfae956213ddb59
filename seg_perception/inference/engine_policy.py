"""When the semantic model uses, must have, or builds a TensorRT engine: ``engine_policy``.

``auto | build_in_background | require | never`` (:class:`~seg_perception.config.records.SemanticModelConfig`):

* ``never``: TensorRT is not considered; backend choice as ``auto`` without it.
* ``require``: start only with a valid engine for this model, input size and precision
  (sidecar checked against the ONNX, which must come from the served weights) and a usable
  TensorRT runtime (a CUDA GPU and a TensorRT library); else one :class:`ConfigError` line
  naming the export and build-engine commands.
* ``build_in_background``: a valid engine is used at once where it can run. A missing or
  stale one never blocks start-up: the model serves on the next backend (ONNX Runtime where
  a matching ONNX exists, else torch) while a child process
  (:func:`seg_perception.export.background_build.main`, low priority, one thread) exports
  the ONNX if needed and builds the engine. When the build ends the
  :func:`switch_decision` says whether a TensorRT runtime can run it here; if so the
  segmenter's backend is replaced between two batches, else it stays on its fallback and
  the status says why.
* ``auto``: ``build_in_background`` where torch sees a CUDA GPU, the device is CUDA and a
  TensorRT library can run engines on that GPU (TensorRT-RTX alone cannot on an A100 or
  H100/H200), ``never`` elsewhere (an engine cannot run there, and a machine should not
  spend its cores building one). With ``backend: tensorrt``, ``auto`` means ``require``
  (TensorRT was asked for by name: no silent fallback).

The policy applies to ``backend: auto`` and ``backend: tensorrt``; ``torch`` and
``onnxruntime`` never use or build engines (``require`` with them is a ConfigError).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seg_perception.config.choices import ENGINE_POLICIES
from seg_perception.errors import BackendError, ConfigError
from seg_perception.inference.artifacts import check_sidecar, sidecar_path
from seg_perception.inference.registry import resolve_device
from seg_perception.inference.tensorrt_library import (
    LIBRARIES,
    RTX_SUPPORTED_CC,
    TRT_INSTALL,
    current_gpu,
    import_tensorrt,
    rtx_cc_matches,
)
from seg_perception.resources import import_root

if TYPE_CHECKING:
    from torch import nn

    from seg_perception.config.records import SemanticModelConfig

log = logging.getLogger(__name__)


ENGINE_MAX_BATCH = 4  # profile 1/1/4 as `build-engine`'s defaults; larger batches are split by the backend
STOP_TIMEOUT_S = 5.0
# The child's entry: export and engine builds run there, never in a serving process.
BUILD_MODULE = "seg_perception.export.background_build"


# -- the decision at start-up -------------------------------------------------------------------
def tensorrt_runtime_problem(device: str = "cuda") -> str | None:
    """Why no TensorRT engine can run in this process on ``device`` (None: one can): a CUDA
    device, a GPU torch sees, and a TensorRT library (tensorrt or tensorrt_rtx) that loads."""
    import torch

    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    resolved = resolve_device(device)
    if not resolved.startswith("cuda"):
        return f"device {device} is not a CUDA device"
    try:
        lib = import_tensorrt()
    except BackendError as err:
        return str(err)
    if lib.is_rtx:
        # TensorRT-RTX loads on any GPU but runs engines only on its allow-list: on an A100 or
        # H100/H200 every engine it builds would be refused after the build.
        gpu = current_gpu(torch.device(resolved).index)
        if gpu is not None and not rtx_cc_matches(gpu.cc, RTX_SUPPORTED_CC):
            return (
                f"{lib.name} {lib.version} does not run on {gpu.name} (compute capability {gpu.cc}; it runs on "
                f"{', '.join(RTX_SUPPORTED_CC)}): install TensorRT (pip install tensorrt)"
            )
    return None


def resolve_policy(policy: str, backend: str, device: str) -> tuple[str, str]:
    """(effective policy, why) for the configured ``policy``: one of build_in_background,
    require, never. ConfigError for contradictions (require with torch/onnxruntime, never
    with tensorrt)."""
    import torch

    if policy not in ENGINE_POLICIES:
        raise ConfigError(f"parameter engine_policy: {policy!r} is not one of {list(ENGINE_POLICIES)}")
    if backend in ("torch", "onnxruntime"):
        if policy == "require":
            raise ConfigError(f"engine_policy require needs backend auto or tensorrt, not {backend}")
        return "never", f"backend {backend}"
    if backend == "tensorrt":
        if policy == "never":
            raise ConfigError("engine_policy never contradicts backend tensorrt; use backend auto or another policy")
        if policy == "auto":
            return "require", "auto with backend tensorrt"
    if policy != "auto":
        return policy, f"engine_policy {policy}"
    if not (resolve_device(device).startswith("cuda") and torch.cuda.is_available()):
        return "never", "auto without a CUDA GPU"
    if not any(importlib.util.find_spec(name) for name in LIBRARIES):
        return "never", f"auto without a TensorRT library: {TRT_INSTALL}"
    runtime = tensorrt_runtime_problem(device)
    if runtime is not None:  # nothing built here could run here: build nothing
        return "never", f"auto: {runtime}"
    return "build_in_background", "auto on a CUDA GPU"


def engine_problem(engine: Path, onnx: Path, precision: str, model: Callable[[], nn.Module] | None) -> str | None:
    """Why ``engine`` is not a valid engine of these weights (None: it is): missing, sidecar
    mismatch (:func:`check_sidecar`: engine file, precision, library, GPU, ONNX hash), or its
    ONNX exported from other weights or in another precision."""
    from seg_perception.inference.artifacts import onnx_metadata_matches

    if not engine.is_file():
        return f"no engine at {engine}"
    try:
        check_sidecar(engine, onnx, precision)
    except BackendError as err:
        return str(err).split("; rebuild it:")[0]
    try:
        reason = onnx_metadata_matches(onnx, model() if model is not None else None, precision)
    except Exception as err:
        # Broad on purpose: any failure to read the ONNX file (onnx raises its own errors) means it cannot be trusted.
        reason = f"cannot read {onnx}: {err}"
    return None if reason is None else f"engine {engine} is stale: {reason}"


def build_commands(config: SemanticModelConfig) -> str:
    """The commands that export and build the engine ``config`` looks for."""
    opts = (
        f"--precision {config.precision} --engines-dir {config.engines_dir} -p model={config.model} "
        f"-p input_height={config.input_height} -p input_width={config.input_width}"
        + (f" -p checkpoint={config.checkpoint}" if config.checkpoint else " -p checkpoint=")
    )
    return f"seg-perception export {opts} && seg-perception build-engine {opts}"


@dataclass(frozen=True)
class EnginePlan:
    """What start-up decided. ``usable``: the engine is valid and can run here now;
    ``build``: a background build is wanted (missing or stale engine)."""

    policy: str  # as configured
    effective: str  # build_in_background | require | never
    why: str
    onnx: Path
    engine: Path
    problem: str | None  # why the engine is not valid (None: valid)
    runtime_problem: str | None  # why no TensorRT runtime is usable here (None: usable)

    @property
    def usable(self) -> bool:
        return self.effective != "never" and self.problem is None and self.runtime_problem is None

    @property
    def build(self) -> bool:
        return self.effective == "build_in_background" and self.problem is not None


def plan_engine(config: SemanticModelConfig, onnx: Path, engine: Path, model: Callable[[], nn.Module]) -> EnginePlan:
    """Decide at start-up; ``require`` without a usable engine is one ConfigError line."""
    effective, why = resolve_policy(config.engine_policy, config.backend, config.device)
    problem = runtime = None
    if effective != "never":
        problem = engine_problem(engine, onnx, config.precision, model)
        runtime = tensorrt_runtime_problem(config.device)
    plan = EnginePlan(config.engine_policy, effective, why, onnx, engine, problem, runtime)
    if effective == "require" and not plan.usable:
        reason = problem or f"no TensorRT runtime usable here ({runtime})"
        raise ConfigError(f"engine_policy require: {reason}; build it: {build_commands(config)}")
    return plan


def switch_decision(plan: EnginePlan, device: str) -> str | None:
    """After a build: why the new engine cannot be switched to here (None: switch)."""
    runtime = tensorrt_runtime_problem(device)
    if runtime is not None:
        return f"no TensorRT runtime usable here ({runtime})"
    try:
        check_sidecar(plan.engine, plan.onnx, _precision_of(plan.engine))
    except BackendError as err:
        return str(err)
    return None


def _precision_of(engine: Path) -> str:
    return str(json.loads(sidecar_path(engine).read_text()).get("precision"))


# -- the build in a child process ------------------------------------------------------------
@dataclass(frozen=True)
class BuildJob:
    """What the child builds: the semantic model's ONNX (exported when missing) and engine."""

    model: str
    checkpoint: str  # "" = untrained (seeded) weights, as the serving process builds them
    num_classes: int
    input_height: int
    input_width: int
    precision: str
    onnx: str
    engine: str
    max_batch: int = ENGINE_MAX_BATCH

    @property
    def log_path(self) -> Path:
        return Path(self.engine + ".build.log")

    def command(self) -> list[str]:
        return [sys.executable, "-m", BUILD_MODULE, json.dumps(asdict(self))]


BUILD_STATES = ("pending", "exporting", "building", "built", "failed", "stopped")


class BackgroundEngineBuild:
    """A :class:`BuildJob` in a child process, watched by a daemon thread. ``state`` goes
    pending -> (exporting ->) building -> built | failed (| stopped). ``on_done(build)`` runs
    on the watcher thread once the child has ended (not after :meth:`stop`)."""

    def __init__(self, job: BuildJob, on_done: Callable[[BackgroundEngineBuild], None] | None = None) -> None:
        self.job = job
        self.state = "pending"
        self.error = ""
        self.started_at: float | None = None
        self.seconds: float | None = None  # wall time of the whole child (export + build)
        self.build_seconds: float | None = None  # the engine build alone, as the child measured it
        self._on_done = on_done
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stopping = False

    def start(self) -> BackgroundEngineBuild:
        path = self.job.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        root = str(import_root())  # this package importable from a checkout too
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        with open(path, "a") as log_file:  # the child holds its own descriptor
            self._proc = subprocess.Popen(
                self.job.command(),
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        self.started_at = time.monotonic()
        self.state = "building"
        self._thread = threading.Thread(target=self._watch, name="engine-build-watch", daemon=True)
        self._thread.start()
        return self

    @property
    def elapsed(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def _watch(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:  # one JSON event a line
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = event.get("event")
            if kind in ("exporting", "building"):
                self.state = kind
            elif kind == "built":
                self.build_seconds = event.get("seconds")
            elif kind == "failed":
                self.error = str(event.get("error", ""))
        code = proc.wait()
        self.seconds = time.monotonic() - (self.started_at or time.monotonic())
        if self._stopping:
            self.state = "stopped"
        elif code == 0 and Path(self.job.engine).is_file():
            self.state = "built"
        else:
            self.error = self.error or f"build process exited with code {code}"
            self.state = "failed"
        self._done.set()
        if self._on_done is not None and not self._stopping:
            try:
                self._on_done(self)
            except Exception:
                # Broad on purpose: the watcher thread's boundary: a failing callback is logged, never lost silently.
                log.exception("engine build: handling the finished build failed")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the child has ended and ``on_done`` has run; True if it has."""
        if self._thread is None:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the child (SIGTERM, then SIGKILL) and the watcher; idempotent."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)
