"""Semantic segmentation core: decoded frames in, class maps at input resolution out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..config import SemanticModelConfig
from ..image_conversion import DecodedImage, to_rgb
from ..inference import SemanticBackend, create_semantic_backend
from ..inference.engine_build import artifact_paths
from ..inference.registry import SemanticArtifacts
from ..labels import LabelSet, load_label_set
from ..models import build_semantic_model
from .postprocess import blend_overlay, message_buffer, upsample_nearest
from .preprocess import resize_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SemanticResult:
    """class_map: (H, W) uint8 train ids at the input resolution; confidence likewise, or None."""

    class_map: np.ndarray
    confidence: np.ndarray | None


class SemanticSegmenter:
    """Batch in, one result per frame out; the same object serves every entry point."""

    def __init__(self, config: SemanticModelConfig, backend: SemanticBackend, labels: LabelSet) -> None:
        self.config = config
        self.backend = backend
        self.labels = labels
        self.palette = labels.palette()
        self._batch: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: SemanticModelConfig) -> SemanticSegmenter:
        labels = load_label_set(config.labels)
        build = partial(_build_checked, config, labels)
        size = (config.input_height, config.input_width)
        onnx, engine = artifact_paths(config.engines_dir, config.model, size, config.precision)
        artifacts = SemanticArtifacts(onnx, engine, size)
        backend = create_semantic_backend(config.backend, config.device, config.precision, build, artifacts)
        return cls(config, backend, labels)

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
        self._batch = resize_batch(images, self.input_size, out=self._batch)
        out = self.backend.run(self._batch, with_confidence=with_confidence)
        results = []
        for i, img in enumerate(images):
            size = (img.height, img.width)
            conf = None
            if out.confidence is not None:
                conf = upsample_nearest(out.confidence[i], size, out=message_buffer(size))
            results.append(SemanticResult(upsample_nearest(out.class_ids[i], size, out=message_buffer(size)), conf))
        return results

    def overlay(self, image: DecodedImage, result: SemanticResult, alpha: float) -> np.ndarray:
        """(H, W, 3) RGB blend of the frame and its class colours."""
        return blend_overlay(to_rgb(image), result.class_map, self.palette, alpha)


def _build_checked(config: SemanticModelConfig, labels: LabelSet):  # noqa: ANN202 - torch module
    model, meta = build_semantic_model(config.model, labels.num_classes, config.checkpoint or None)
    if meta.get("labels") not in (None, labels.name):
        log.warning("checkpoint was trained on label set %r, the config uses %r", meta["labels"], labels.name)
    return model
