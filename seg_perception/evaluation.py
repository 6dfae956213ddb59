"""Pixel-level semantic metrics from a confusion matrix (Cityscapes conventions:
ignore label excluded, IoU = TP / (TP + FP + FN) per class, mean over classes that occur)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; ignore pixels skipped.

    Predictions must be class ids < C wherever the ground truth is not ignored.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = gt != ignore
    p, g = pred[valid].astype(np.int64), gt[valid].astype(np.int64)
    if p.size and (p.max() >= num_classes or g.max() >= num_classes):
        raise ValueError(f"ids must be < {num_classes}: prediction max {p.max()}, ground truth max {g.max()}")
    counts = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for classes absent from both ground truth and prediction."""
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def summarize(conf: np.ndarray, class_names: list[str]) -> dict[str, object]:
    """mIoU over classes present in the ground truth, pixel accuracy, per-class IoU."""
    iou = iou_per_class(conf)
    present = conf.sum(1) > 0
    return {
        "mIoU": float(np.nanmean(iou[present])) if present.any() else float("nan"),
        "pixel_accuracy": float(np.diag(conf).sum() / max(conf.sum(), 1)),
        "iou": {
            name: (None if np.isnan(v) or not present[i] else float(v))
            for i, (name, v) in enumerate(zip(class_names, iou))
        },
    }
