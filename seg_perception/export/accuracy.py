"""Accuracy gate of exported graphs: the task metric on held-out generated road scenes,
the exported precision next to torch fp32, refused past a maximum drop.

Agreement checks (:mod:`.onnx`, :mod:`.instance_check`) prove a graph computes what torch
computes; this gate measures what a precision costs in the metric that matters: semantic
mIoU (:func:`seg_perception.metrics.confusion.summarize`), instance mask AP50 (the Cityscapes
instance evaluation, :class:`seg_perception.metrics.cityscapes.instance.InstanceEvaluator`). Frames
are generated with seeds training never uses (:data:`HELDOUT_SEED` and up) at the model input
size and go through the pipeline's own preprocessing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from torch import nn

from seg_perception.errors import BackendError

if TYPE_CHECKING:
    from seg_perception.inference.base import Detections
    from seg_perception.pipeline.instance import InstanceSegmenter
    from seg_perception.synthetic.frames import SyntheticFrame

log = logging.getLogger(__name__)

HELDOUT_SEED = 10_000
# Largest accepted drop, in metric points (mIoU or AP50 x 100), per precision.
MAX_DROP: dict[str, float] = {"fp32": 1.0, "fp16": 1.0, "int8": 2.0}


class AccuracyGateError(BackendError):
    """An exported precision loses more accuracy than allowed."""


@dataclass(frozen=True)
class AccuracyReport:
    metric: str  # "mIoU" | "mask AP50"
    reference: float  # torch fp32, in points
    exported: float  # the exported graph(s) in ONNX Runtime, in points
    precision: str
    frames: int
    max_drop: float

    @property
    def drop(self) -> float:
        return self.reference - self.exported

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def __str__(self) -> str:
        return (
            f"{self.metric} on {self.frames} held-out scenes: torch fp32 {self.reference:.2f}, "
            f"onnxruntime {self.precision} {self.exported:.2f}, drop {self.drop:+.2f} points "
            f"(max {self.max_drop:.2f})"
        )


def heldout_scenes(input_size: tuple[int, int], count: int, seed: int = HELDOUT_SEED) -> list[SyntheticFrame]:
    """``count`` generated frames (SyntheticFrame) at ``input_size`` = (H, W)."""
    from seg_perception.synthetic.frames import generate_frame

    height, width = input_size
    return [generate_frame(seed + i, i, width, height) for i in range(count)]


def _batch(frames: Sequence[SyntheticFrame], input_size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.pipeline.preprocess import resize_batch

    return resize_batch([DecodedImage(f.image, ColorOrder.RGB) for f in frames], input_size)


def semantic_miou(
    run: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]],
    frames: Sequence[SyntheticFrame],
    input_size: tuple[int, int],
    num_classes: int,
    class_names: list[str],
) -> float:
    """mIoU in points of ``run`` (uint8 (N, H, W, 3) -> class ids (N, H, W)) on ``frames``."""
    from seg_perception.metrics.confusion import confusion_matrix, summarize

    conf = np.zeros((num_classes, num_classes), np.int64)
    batch = _batch(frames, input_size)
    for frame, pred in zip(frames, (run(batch[i : i + 1])[0] for i in range(len(batch)))):
        conf += confusion_matrix(pred, frame.train_ids, num_classes)
    return 100.0 * float(summarize(conf, class_names)["mIoU"])


def semantic_accuracy_gate(
    model: nn.Module,
    onnx_path: str | Path,
    precision: str,
    input_size: tuple[int, int],
    labels: str = "cityscapes",
    *,
    frames: int = 6,
    max_drop: float | None = None,
    remove_on_failure: bool = True,
) -> AccuracyReport:
    """mIoU of the exported semantic graph in ONNX Runtime vs torch fp32; refuses (removes the
    file, raises :class:`AccuracyGateError`) when the drop exceeds ``max_drop`` points."""
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend
    from seg_perception.inference.torch_backend import TorchSemanticBackend
    from seg_perception.labels import load_label_set

    label_set = load_label_set(labels)
    scenes = heldout_scenes(input_size, frames)
    args = (scenes, input_size, label_set.num_classes, label_set.class_names)
    reference = semantic_miou(lambda b: TorchSemanticBackend(model, "cpu", "fp32").run(b).class_ids, *args)
    ort = OnnxRuntimeSemanticBackend(onnx_path, "cpu", precision)
    exported = semantic_miou(lambda b: ort.run(b).class_ids, *args)
    report = AccuracyReport(
        "mIoU", reference, exported, precision, frames, MAX_DROP[precision] if max_drop is None else float(max_drop)
    )
    return _decide(report, [Path(onnx_path)], remove_on_failure)


def instance_ap50(
    detect: Callable[[npt.NDArray[np.uint8]], list[Detections]],
    segmenter: InstanceSegmenter,
    frames: Sequence[SyntheticFrame],
    input_size: tuple[int, int],
) -> float:
    """Cityscapes mask AP50 in points of ``detect`` (uint8 batch -> Detections per frame),
    detections turned into instance maps by ``segmenter``'s own post-processing."""
    from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
    from seg_perception.pipeline.instance import instances_from_detections

    evaluator = InstanceEvaluator()
    batch = _batch(frames, input_size)
    for i, frame in enumerate(frames):
        det = detect(batch[i : i + 1])[0]
        result = instances_from_detections(
            det.boxes,
            det.labels,
            det.scores,
            det.masks,
            segmenter.classes,
            image_size=frame.image.shape[:2],
            source_size=input_size,
            roi_masks=True,
            score_threshold=segmenter.score_threshold,
            mask_threshold=segmenter.mask_threshold,
            max_instances=segmenter.max_instances,
        )
        evaluator.add(frame.instance_ids, result.instance_map, [(r.value, r.score) for r in result.instances])
    ap50 = evaluator.result()["AP50"]
    return 100.0 * (0.0 if ap50 is None or np.isnan(ap50) else float(ap50))


def instance_accuracy_gate(
    segmenter: InstanceSegmenter,
    paths: Mapping[str, str | Path],
    precision: str,
    *,
    frames: int = 6,
    max_drop: float | None = None,
    remove_on_failure: bool = True,
) -> AccuracyReport:
    """Mask AP50 of the exported split graphs (ONNX Runtime) vs eager torch fp32, both through
    ``segmenter`` (an InstanceSegmenter: thresholds, post-processing); refused like the
    semantic gate."""
    from seg_perception.export.instance_check import eager_detect
    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend

    size = segmenter.input_size
    scenes = heldout_scenes(size, frames)
    reference = instance_ap50(lambda b: eager_detect(segmenter.model, b), segmenter, scenes, size)
    backend = OnnxRuntimeInstanceBackend(segmenter.model, paths, size, precision)
    exported = instance_ap50(backend.detect, segmenter, scenes, size)
    report = AccuracyReport(
        "mask AP50",
        reference,
        exported,
        precision,
        frames,
        MAX_DROP[precision] if max_drop is None else float(max_drop),
    )
    return _decide(report, [Path(p) for p in paths.values()], remove_on_failure)


def _decide(report: AccuracyReport, files: list[Path], remove: bool) -> AccuracyReport:
    if report.passed:
        log.info("accuracy gate passed: %s", report)
        return report
    if remove:
        for f in files:
            f.unlink(missing_ok=True)
    raise AccuracyGateError(f"accuracy gate: {report}; refused" + (" and removed the export" if remove else ""))
