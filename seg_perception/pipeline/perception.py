"""The combined core: semantic and/or instance segmentation of one batch of decoded frames,
and their panoptic fusion. Offline replay, the demo and the perception node run this."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig, section
from seg_perception.errors import ConfigError
from seg_perception.inference.torch_runner import cuda_stream
from seg_perception.io.image import DecodedImage, to_rgb
from seg_perception.labels import LabelSet
from seg_perception.pipeline.factory import instance_from_config
from seg_perception.pipeline.instance import InstanceResult, InstanceSegmenter
from seg_perception.pipeline.overlays import blend_overlay, draw_instance_overlay
from seg_perception.pipeline.panoptic import fuse_panoptic
from seg_perception.pipeline.semantic import SemanticResult, SemanticSegmenter

MODELS = ("semantic", "instance")

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class FrameResult:
    """One frame's outputs; a model that is not loaded leaves its fields None. ``panoptic``
    (uint16, Cityscapes instanceIds layout) needs both models."""

    semantic: SemanticResult | None
    instance: InstanceResult | None
    panoptic: npt.NDArray[np.uint16] | None


def parse_models(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"semantic,instance"`` (or a list) -> the models in canonical order; ConfigError otherwise."""
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        raise ConfigError(f"models must be a non-empty subset of {list(MODELS)}, got {spec!r}")
    return tuple(m for m in MODELS if m in names)


def stuff_score(params: Mapping[str, Any]) -> float:
    """``panoptic.instance_overrides_stuff_score``, validated (see pipeline/panoptic.py)."""
    score = params.get("panoptic.instance_overrides_stuff_score", 0.5)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise ConfigError(f"parameter panoptic.instance_overrides_stuff_score: expected [0, 1], got {score!r}")
    return float(score)


class PerceptionCore:
    """Loads the chosen models once; :meth:`run` takes a batch and returns one result per frame."""

    def __init__(
        self, semantic: SemanticSegmenter | None, instance: InstanceSegmenter | None, overrides_stuff_score: float = 0.5
    ) -> None:
        if semantic is None and instance is None:
            raise ConfigError("at least one model is needed")
        if semantic is not None and instance is not None and semantic.labels.name != instance.labels.name:
            raise ConfigError("semantic.labels and instance.labels must name the same label set for panoptic fusion")
        self.semantic = semantic
        self.instance = instance
        self.overrides_stuff_score = overrides_stuff_score
        # The two models run concurrently only on a GPU; on a CPU each already uses every core.
        on_gpu = semantic is not None and instance is not None and semantic.backend.device.startswith("cuda")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="instance") if on_gpu else None
        # ... and then each on its own CUDA stream, so their kernels can overlap on the device.
        self._streams: dict[str, torch.cuda.Stream] = {}
        # (batch size, with_confidence) already run once: see run()
        self._shapes_seen: set[tuple[int, bool]] = set()
        if semantic is not None and instance is not None and on_gpu:
            for name, device in (("semantic", semantic.backend.device), ("instance", instance.device)):
                if torch.device(device).type == "cuda":
                    self._streams[name] = cuda_stream(torch.device(device))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], models: Sequence[str] = MODELS) -> PerceptionCore:
        """From perception-node parameters (``semantic.*``, ``instance.*``, ``panoptic.*``)."""
        models = parse_models(models)
        semantic = instance = None
        if "semantic" in models:
            semantic = SemanticSegmenter.from_config(SemanticModelConfig.from_params(section(params, "semantic")))
        if "instance" in models:
            instance = instance_from_config(InstanceModelConfig.from_params(section(params, "instance")))
        return cls(semantic, instance, stuff_score(params))

    @property
    def labels(self) -> LabelSet:
        if self.semantic is not None:
            return self.semantic.labels
        assert self.instance is not None  # __init__ refuses a core without models
        return self.instance.labels

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m for m, core in zip(MODELS, (self.semantic, self.instance)) if core is not None)

    def run(self, images: Sequence[DecodedImage], with_confidence: bool = False) -> list[FrameResult]:
        n = len(images)
        semantic: list[SemanticResult | None] = [None] * n
        instance: list[InstanceResult | None] = [None] * n
        pending = None
        # The first batch of a shape may capture CUDA graphs (the torch backend captures one per
        # batch shape): it runs with the instance model idle, so nothing the other thread does
        # on the device can invalidate the capture or be recorded into it. Later batches of the
        # shape replay and run concurrently.
        shape = (n, with_confidence)
        first_of_shape = shape not in self._shapes_seen
        self._shapes_seen.add(shape)
        if self._pool and self.instance and not first_of_shape:
            pending = self._pool.submit(self._on_stream, "instance", self.instance.segment, images)
        if self.semantic is not None:
            segmented = self._on_stream("semantic", self.semantic.segment, images, with_confidence=with_confidence)
            semantic = list(segmented)
        if pending is not None:
            instance = list(pending.result())
        elif self.instance is not None:
            alone: list[InstanceResult] = self._on_stream("instance", self.instance.segment, images)
            instance = list(alone)
        return [FrameResult(s, i, self.panoptic(s, i)) for s, i in zip(semantic, instance)]

    def _on_stream(
        self, model: str, segment: Callable[..., list[_Result]], images: Sequence[DecodedImage], **kwargs: Any
    ) -> list[_Result]:
        """``segment(images, **kwargs)`` with ``model``'s CUDA stream as the current stream
        (when it has one), synchronised before the results go to another thread."""
        stream = self._streams.get(model)
        if stream is None:
            return segment(images, **kwargs)
        # Work queued on the default stream (weights, buffers made at start-up) comes first.
        stream.wait_stream(torch.cuda.current_stream(stream.device))
        with torch.cuda.stream(stream):
            results = segment(images, **kwargs)
        # The results are numpy arrays already (their .cpu() copies waited), but a backend that
        # left device work queued must finish it before the caller reads or reuses anything.
        stream.synchronize()
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def panoptic(
        self, semantic: SemanticResult | None, instance: InstanceResult | None
    ) -> npt.NDArray[np.uint16] | None:
        if semantic is None or instance is None:
            return None
        return fuse_panoptic(semantic.class_map, instance, self.labels, self.overrides_stuff_score)

    def overlays(
        self, image: DecodedImage, result: FrameResult, alpha: float = 0.5
    ) -> dict[str, npt.NDArray[np.uint8]]:
        """RGB overlays by output name: ``semantic``, ``instance`` and ``panoptic`` (the
        semantic colours with the instances drawn over them), as far as the models allow."""
        rgb = to_rgb(image)
        out: dict[str, npt.NDArray[np.uint8]] = {}
        palette = self.labels.palette()
        if result.semantic is not None:
            out["semantic"] = blend_overlay(rgb, result.semantic.class_map, palette, alpha)
        if result.instance is not None:
            out["instance"] = draw_instance_overlay(rgb, result.instance, palette, alpha)
        if result.panoptic is not None and result.instance is not None:
            out["panoptic"] = self.panoptic_overlay(rgb, result.panoptic, result.instance, alpha)
        return out

    def panoptic_overlay(
        self, rgb: npt.NDArray[np.uint8], panoptic: npt.NDArray[np.uint16], instance: InstanceResult, alpha: float
    ) -> npt.NDArray[np.uint8]:
        """Stuff (and unclaimed thing pixels) in class colours, each kept instance in its own
        shade, both read from the panoptic map itself, so the overlay shows what was fused."""
        label_to_train = self.labels.label_to_train_id()
        label_ids = np.where(panoptic >= 1000, panoptic // 1000, panoptic)
        stuff = blend_overlay(rgb, label_to_train[label_ids], self.labels.palette(), alpha)
        things = np.where(panoptic >= 1000, panoptic, 0).astype(np.uint16)
        present = set(np.unique(things).tolist())
        kept = InstanceResult(things, [r for r in instance.instances if r.value in present])
        return draw_instance_overlay(stuff, kept, self.labels.palette(), 0.6, draw_labels=False)
