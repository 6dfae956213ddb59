"""Semantic segmentation core: decoded frames in, class maps at input resolution out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from seg_perception.config.records import SemanticModelConfig
from seg_perception.inference.artifacts import artifact_paths
from seg_perception.inference.base import FullFrameBackend, SemanticBackend
from seg_perception.inference.engine_policy import (
    BackgroundEngineBuild,
    BuildJob,
    EnginePlan,
    plan_engine,
    switch_decision,
)
from seg_perception.inference.registry import SemanticArtifacts, create_semantic_backend, resolve_device
from seg_perception.io.image import DecodedImage, eight_bit, to_rgb
from seg_perception.labels import LabelSet, load_label_set
from seg_perception.models.semantic import build_semantic_model
from seg_perception.pipeline.overlays import blend_overlay
from seg_perception.pipeline.postprocess import message_buffer, upsample_nearest
from seg_perception.pipeline.preprocess import resize_batch

if TYPE_CHECKING:
    from torchvision.models.segmentation import DeepLabV3

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class SemanticResult:
    """class_map: (H, W) uint8 train ids at the input resolution; confidence likewise, or None."""

    class_map: npt.NDArray[np.uint8]
    confidence: npt.NDArray[np.uint8] | None


class SemanticSegmenter:
    """Batch in, one result per frame out; the same object serves every entry point."""

    def __init__(
        self,
        config: SemanticModelConfig,
        backend: SemanticBackend,
        labels: LabelSet,
        engine_plan: EnginePlan | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.labels = labels
        self.palette = labels.palette()
        self._batch: npt.NDArray[np.uint8] | None = None
        self.engine_plan = engine_plan  # what start-up decided about the TensorRT engine
        self.engine_build: BackgroundEngineBuild | None = None
        self._engine_note = ""  # the outcome of the background build
        self._notify: Callable[[str, str], None] = _log_event

    @classmethod
    def from_config(cls, config: SemanticModelConfig) -> SemanticSegmenter:
        """Build the model on its backend. The engine policy is applied here (``require``
        without a usable engine raises ConfigError); a background build is only started by
        :meth:`start_engine_build` (the nodes call it; offline tools do not)."""
        labels = load_label_set(config.labels)
        build = _once(partial(_build_checked, config, labels))
        size = (config.input_height, config.input_width)
        onnx, engine = artifact_paths(config.engines_dir, config.model, size, config.precision)
        artifacts = SemanticArtifacts(onnx, engine, size)
        plan = plan_engine(config, onnx, engine, build)
        if plan.effective == "require":
            backend = create_semantic_backend("tensorrt", config.device, config.precision, build, artifacts)
        elif config.backend in ("auto", "tensorrt"):
            skip = {} if plan.usable else {"tensorrt": _why_not(plan)}
            backend = create_semantic_backend("auto", config.device, config.precision, build, artifacts, skip)
        else:
            backend = create_semantic_backend(config.backend, config.device, config.precision, build, artifacts)
        return cls(config, backend, labels, plan)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.config.input_height, self.config.input_width

    def segment(self, images: Sequence[DecodedImage], with_confidence: bool = False) -> list[SemanticResult]:
        """Run a batch. Each result has its own frame's resolution.

        The maps are written straight into new message-ready buffers
        (:func:`~.postprocess.message_buffer`), so publishing them costs no further copy;
        every call returns new arrays (results of different calls never share memory).
        """
        if not images:
            return []
        images = [eight_bit(img) for img in images]  # a mono16 camera's frames too
        backend = self.backend  # read once: a batch runs wholly on one backend (see switch_backend)
        if isinstance(backend, FullFrameBackend) and backend.takes_full_frames:
            # e.g. torch on CUDA: one upload of the full frames, resized on the GPU
            out = backend.run_images(images, self.input_size, with_confidence=with_confidence)
        else:
            self._batch = resize_batch(images, self.input_size, out=self._batch)
            out = backend.run(self._batch, with_confidence=with_confidence)
        results = []
        for i, img in enumerate(images):
            size = (img.height, img.width)
            conf = None
            if out.confidence is not None:
                conf = upsample_nearest(out.confidence[i], size, out=message_buffer(size))
            results.append(SemanticResult(upsample_nearest(out.class_ids[i], size, out=message_buffer(size)), conf))
        return results

    def overlay(self, image: DecodedImage, result: SemanticResult, alpha: float) -> npt.NDArray[np.uint8]:
        """(H, W, 3) RGB blend of the frame and its class colours."""
        return blend_overlay(to_rgb(image), result.class_map, self.palette, alpha)

    # -- the TensorRT engine (engine_policy) ---------------------------------------------
    def switch_backend(self, backend: SemanticBackend) -> SemanticBackend:
        """Serve from the next batch on with ``backend``; returns the old one.

        Safe from any thread without a lock: :meth:`segment` loads ``self.backend`` once per
        batch and rebinding an attribute is atomic, so each batch runs wholly on the old or
        wholly on the new backend; a batch in flight finishes on the old one, which is freed
        after it. ``backend`` must take the same frames (uint8, the model input size)."""
        old, self.backend = self.backend, backend
        self._notify(
            "info", f"semantic backend switched from {old.name}/{old.device} to {backend.name}/{backend.device}"
        )
        return old

    def start_engine_build(self, notify: Callable[[str, str], None] | None = None) -> BackgroundEngineBuild | None:
        """Under ``build_in_background`` with a missing or stale engine: build it in a child
        process and switch to it when it is built and can run here. Returns immediately.
        ``notify(level, message)`` (level: info | warning | error) reports progress, from
        this and from the watcher thread."""
        plan = self.engine_plan
        if notify is not None:
            self._notify = notify
        if plan is None or not plan.build or self.engine_build is not None:
            return self.engine_build
        cfg = self.config
        job = BuildJob(
            cfg.model,
            cfg.checkpoint,
            self.labels.num_classes,
            cfg.input_height,
            cfg.input_width,
            cfg.precision,
            str(plan.onnx),
            str(plan.engine),
        )
        self.engine_build = BackgroundEngineBuild(job, on_done=self._engine_built).start()
        self._notify(
            "info",
            f"engine: {plan.problem}; serving on {self.backend.name} while a child process builds "
            f"{plan.engine} (log {job.log_path})",
        )
        return self.engine_build

    def _engine_built(self, build: BackgroundEngineBuild) -> None:
        """Watcher thread, once the child has ended: switch to the engine or say why not."""
        plan = self.engine_plan
        assert plan is not None
        took = f"in {build.elapsed:.1f} s"
        if build.state != "built":
            self._engine_note = (
                f"build failed {took}: {build.error} (log {build.job.log_path}); staying on {self.backend.name}"
            )
            self._notify("error", f"engine {self._engine_note}")
            return
        reason = switch_decision(plan, self.config.device)
        if reason is None:
            try:
                new = open_engine_backend(self.config, plan)
            except Exception as err:
                # Broad on purpose: the watcher thread's boundary: a broken engine is reported and never switched to.
                reason = f"{type(err).__name__}: {err}"
            else:
                old = self.switch_backend(new)
                self._engine_note = f"built {plan.engine} {took}; switched from {old.name} to {new.name}"
                return
        self._engine_note = f"built {plan.engine} {took}; staying on {self.backend.name}: {reason}"
        self._notify("warning", f"engine {self._engine_note}")

    def engine_status(self) -> str:
        """One line about the TensorRT engine, for /diagnostics and logs."""
        plan = self.engine_plan
        if plan is None:
            return "unknown"
        build = self.engine_build
        if build is not None and build.state in ("pending", "exporting", "building"):
            phase = "exporting the ONNX, then building" if build.state == "exporting" else "building"
            return (
                f"building: {phase} {plan.engine} ({build.elapsed:.0f} s so far, log {build.job.log_path}); "
                f"serving on {self.backend.name} meanwhile"
            )
        if self._engine_note:
            return self._engine_note
        if plan.effective == "never":
            return f"not used ({plan.why})"
        if self.backend.name == "tensorrt":
            return f"in use: {plan.engine}"
        if plan.problem is not None:
            return f"not built ({plan.problem}); serving on {self.backend.name}"
        return f"valid engine {plan.engine}; staying on {self.backend.name}: {_why_not(plan)}"

    def engine_diagnostics(self) -> dict[str, Any]:
        """``engine_policy``, ``engine_status`` and, once a build ran, ``engine_build_s``."""
        plan = self.engine_plan
        if plan is None:
            return {}
        policy = plan.effective if plan.policy == plan.effective else f"{plan.effective} ({plan.why})"
        values: dict[str, Any] = {"engine_policy": policy, "engine_status": self.engine_status()}
        if self.engine_build is not None:
            values["engine_build_s"] = round(self.engine_build.elapsed, 1)
        return values

    def close(self) -> None:
        """Stop a background build still running (its child process ends)."""
        if self.engine_build is not None:
            self.engine_build.stop()


def open_engine_backend(config: SemanticModelConfig, plan: EnginePlan) -> SemanticBackend:
    """The TensorRT backend on the built engine, run once on a blank batch, so a broken
    engine is found here, off the serving thread, and never switched to."""
    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend

    backend = TensorRTSemanticBackend(plan.engine, resolve_device(config.device), config.precision, onnx_path=plan.onnx)
    backend.warm_up()
    return backend


def _why_not(plan: EnginePlan) -> str:
    if plan.effective == "never":
        return f"engine_policy never ({plan.why})"
    if plan.problem is not None:
        return plan.problem
    return f"no TensorRT runtime usable here ({plan.runtime_problem})"


def _log_event(level: str, message: str) -> None:
    getattr(log, level)(message)


def _once(build: Callable[[], _T]) -> Callable[[], _T]:
    """``build`` called at most once (the engine check and the fallback backend share it)."""
    made: list[_T] = []

    def get() -> _T:
        if not made:
            made.append(build())
        return made[0]

    return get


def _build_checked(config: SemanticModelConfig, labels: LabelSet) -> DeepLabV3:
    model, meta = build_semantic_model(config.model, labels.num_classes, config.checkpoint or None)
    if meta.get("labels") not in (None, labels.name):
        log.warning("checkpoint was trained on label set %r, the config uses %r", meta["labels"], labels.name)
    return model
