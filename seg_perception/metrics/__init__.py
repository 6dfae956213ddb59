"""Benchmark metrics equal to the official Cityscapes and COCO tools.

===========================  =================================================  ============================
metric                       equals                                             how
===========================  =================================================  ============================
IoU, iIoU, categories, mIoU  ``cityscapesscripts`` evalPixelLevelSemanticLabeling  numpy re-implementation
AP, AP50 (Cityscapes)        ``cityscapesscripts`` evalInstanceLevelSemanticLabeling numpy re-implementation
PQ, SQ, RQ                   ``cityscapesscripts`` evalPanopticSemanticLabeling   numpy re-implementation
COCO mask AP / AP50 / AP75   ``pycocotools`` COCOeval (segm)                     calls pycocotools itself
===========================  =================================================  ============================

The re-implementations are vectorised (no per-pixel Python loops) and replicate the official
arithmetic, including its accumulation order, so the tests (``test/test_metrics.py``) find them
equal to the official scripts run on the same files. Converters write our outputs in the
official input formats (:func:`write_instance_predictions`, :func:`write_panoptic_json`,
:func:`coco_ground_truth` / :func:`coco_predictions`). :func:`evaluate_paths` evaluates a
prediction folder against a Cityscapes-layout ground truth (``seg-perception eval``).

Pixel accuracy is our addition (the official script has no valid one). The official scripts'
quirks are listed in :mod:`seg_perception.metrics.cityscapes`.
"""

from __future__ import annotations

from seg_perception.metrics.cityscapes import (
    AVG_CLASS_SIZE,
    OVERLAPS,
    InstanceEvaluator,
    PanopticEvaluator,
    SemanticEvaluator,
    evaluate_instances,
    evaluate_panoptic,
    evaluate_semantic,
    gt_panoptic_segments,
    panoptic_categories,
    pred_panoptic_segments,
    write_instance_predictions,
    write_panoptic_json,
)
from seg_perception.metrics.coco import coco_ground_truth, coco_mask_ap, coco_predictions, write_coco_json


def __getattr__(name: str):  # lazy, so that ``python -m seg_perception.metrics.run`` runs cleanly
    if name in ("evaluate_paths", "main_eval"):
        from seg_perception.metrics import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AVG_CLASS_SIZE",
    "OVERLAPS",
    "InstanceEvaluator",
    "PanopticEvaluator",
    "SemanticEvaluator",
    "coco_ground_truth",
    "coco_mask_ap",
    "coco_predictions",
    "evaluate_instances",
    "evaluate_panoptic",
    "evaluate_paths",
    "evaluate_semantic",
    "gt_panoptic_segments",
    "main_eval",
    "panoptic_categories",
    "pred_panoptic_segments",
    "write_coco_json",
    "write_instance_predictions",
    "write_panoptic_json",
]
