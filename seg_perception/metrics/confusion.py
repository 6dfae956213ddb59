"""Confusion matrices and what is read from them: per-class IoU, mean IoU, pixel accuracy.

The one implementation behind every semantic-segmentation number the package reports. Its
callers follow two conventions, chosen by explicit arguments and function names so that each
keeps its digits (the Cityscapes benchmark tests and the shipped model cards depend on them):

* **Cityscapes benchmark** - :class:`seg_perception.metrics.cityscapes.semantic.SemanticEvaluator`
  (``seg-perception eval``, replay, demo and bag metrics): a label-id matrix over every pixel
  (``ignore=None``); false positives only on evaluated ground-truth rows (``fp_rows``); mean
  IoU by :func:`mean_over_defined` (the official ``averageScoreClasses``: classes with
  TP + FP + FN > 0); pixel accuracy over the evaluated rows, NaN when there are none.
* **Train-id summary** - :func:`summarize`, used by ``training.loop`` (the model cards),
  ``export.accuracy`` (the accuracy gate) and :mod:`seg_perception.metrics.stream` (mIoU per
  scene condition): a train-id matrix without the ignore label 255; false positives on every
  row; mean IoU by :func:`mean_iou_over_gt_classes` (classes present in the ground truth, not
  an official convention); pixel accuracy over every row, 0.0 for an empty matrix.

Per-class IoU is the same in both: TP / (TP + FP + FN), NaN where TP + FP + FN = 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

#: (C, C) counts, rows = ground truth, columns = prediction
ConfusionMatrix: TypeAlias = npt.NDArray[np.int64]


def confusion_matrix(
    pred: npt.NDArray[np.integer[Any]], gt: npt.NDArray[np.integer[Any]], num_classes: int, ignore: int | None = 255
) -> ConfusionMatrix:
    """(C, C) int64 counts of (ground truth, prediction) pixel pairs, C = ``num_classes``.

    ``pred`` and ``gt`` are integer class-id images of the same shape; pixels whose ground
    truth equals ``ignore`` are skipped (``None``: every pixel counts). Elsewhere both must be
    ids in 0..C-1; an id >= C raises ValueError, as does a shape mismatch.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    n = num_classes
    p, g = pred.ravel(), gt.ravel()
    skipped = 0 if ignore is None else int(np.count_nonzero(g == ignore))
    if p.size:
        outside = int(np.count_nonzero((g < 0) | (g >= n))) - (
            skipped if ignore is not None and not 0 <= ignore < n else 0
        )
        if outside or int(p.min()) < 0 or int(p.max()) >= n:
            raise ValueError(_range_error(p, g, n, ignore))
    # Each pixel's bin, g * n + p, built in one copy of the ground truth. Ignored pixels go to
    # an extra row, dropped at the end: cheaper than selecting the others (a boolean index
    # copies both images), and the counts are the same.
    key = g.astype(np.intp)
    rows = n
    if skipped:
        rows = n + 1
        if ignore is not None and ignore >= n:
            np.minimum(key, n, out=key)  # the ignored are the only ids >= n (checked above)
        else:
            np.putmask(key, g == ignore, n)
    key *= n
    key += p
    counts = np.bincount(key, minlength=rows * n)
    return counts.reshape(rows, n)[:n].astype(np.int64)


def _range_error(
    pred: npt.NDArray[np.integer[Any]], gt: npt.NDArray[np.integer[Any]], n: int, ignore: int | None
) -> str:
    counted = gt if ignore is None else gt[gt != ignore]
    g_range = f"{counted.min()}..{counted.max()}" if counted.size else "none counted"
    return f"ids must be in 0..{n - 1}: prediction {pred.min()}..{pred.max()}, ground truth {g_range}"


def class_counts(
    conf: ConfusionMatrix, fp_rows: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(C,) TP, FP and FN per class.

    FN counts the whole ground-truth row. FP counts the class's column over ``fp_rows`` only
    (row indices, repeats count repeatedly; ``None``: every row): the Cityscapes evaluation
    passes its evaluated labels, so a prediction on a pixel of an ignored label is no false
    positive.
    """
    tp = np.diag(conf)
    fn = conf.sum(1) - tp
    fp = (conf if fp_rows is None else conf[fp_rows]).sum(0) - tp
    return tp, fp, fn


def iou_per_class(conf: ConfusionMatrix, fp_rows: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float64]:
    """(C,) IoU = TP / (TP + FP + FN) per class (:func:`class_counts`); NaN where TP + FP + FN = 0.
    The counts are exact integers and the one division is correctly rounded."""
    tp, fp, fn = class_counts(conf, fp_rows)
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def mean_over_defined(scores: Iterable[float]) -> float:
    """Mean of the non-NaN scores, summed left to right; NaN if there are none.

    The official Cityscapes convention (``getScoreAverage`` of ``evalPixelLevelSemanticLabeling``,
    its ``averageScoreClasses`` for mIoU): with :func:`iou_per_class` this averages over the
    classes with TP + FP + FN > 0, so a class predicted but absent from the ground truth
    counts with IoU 0.
    """
    n, total = 0, 0.0
    for v in scores:
        if not math.isnan(v):
            n += 1
            total += v
    return total / n if n else float("nan")


def mean_iou_over_gt_classes(conf: ConfusionMatrix, iou: npt.NDArray[np.float64]) -> float:
    """Mean of ``iou`` over the classes present in the ground truth (non-empty rows of
    ``conf``); NaN if the matrix is empty. ``np.nanmean`` (pairwise summation).

    Not an official benchmark convention: it is the one our training and export reports and
    the model cards use. A class predicted but absent from the ground truth is left out
    instead of counting as 0; whenever every predicted class occurs in the ground truth it
    averages the same classes as :func:`mean_over_defined` (the sums may differ in the last bit).
    """
    present = conf.sum(1) > 0
    return float(np.nanmean(iou[present])) if present.any() else float("nan")


def pixel_accuracy(conf: ConfusionMatrix, rows: Sequence[int] | None = None) -> float:
    """Correct / counted pixels over the ground-truth ``rows`` (class indices, default all);
    NaN when no pixel is counted."""
    if rows is None:
        correct, counted = int(np.trace(conf)), int(conf.sum())
    else:
        correct, counted = int(conf[rows, rows].sum()), int(conf[rows, :].sum())
    return correct / counted if counted else float("nan")


def summarize(conf: ConfusionMatrix, class_names: list[str]) -> dict[str, Any]:
    """The train-id summary: ``mIoU`` (:func:`mean_iou_over_gt_classes`), ``pixel_accuracy``
    (0.0 for an empty matrix) and ``iou`` {class name: IoU, None for classes absent from the
    ground truth}. ``class_names`` are indexed by train id."""
    iou = iou_per_class(conf)
    present = conf.sum(1) > 0
    accuracy = pixel_accuracy(conf)
    return {
        "mIoU": mean_iou_over_gt_classes(conf, iou),
        "pixel_accuracy": 0.0 if math.isnan(accuracy) else accuracy,  # what reports have always shown
        "iou": {
            name: (None if np.isnan(v) or not present[i] else float(v))
            for i, (name, v) in enumerate(zip(class_names, iou))
        },
    }
