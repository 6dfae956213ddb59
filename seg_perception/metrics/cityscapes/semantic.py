"""Pixel-level semantic labeling, as ``evalPixelLevelSemanticLabeling`` computes it.

:class:`SemanticEvaluator` gives per-class IoU and instance-weighted iIoU, their means
(``averageScoreClasses`` / ``averageScoreInstClasses``), category IoU / iIoU and their means.
The confusion matrix (:func:`seg_perception.metrics.confusion.confusion_matrix`) is indexed by
*label id* (0..33). A pixel whose ground truth is an ``ignoreInEval`` label is counted in its
row only, so a prediction there is never a false positive; a prediction of an ignored label
(e.g. 0 "unlabeled") on an evaluated pixel is a false negative of the true class. Per-class
IoU is NaN for ignored labels and where TP+FP+FN = 0 (a class absent from the ground truth but
predicted somewhere gets IoU 0 and pulls the mean down). iIoU weights every ground-truth
instance's TP and FN pixels by ``avgClassSize[class] / instance size`` (the constants of the
official script, :data:`AVG_CLASS_SIZE`); only instance ids strictly greater than 1000 count.
Means skip NaN entries. Float sums are accumulated in the official order, so results are
bit-identical, not merely close. :meth:`SemanticEvaluator.merge` appends another evaluator's
frames (per bag in separate processes, combined afterwards) with the same bit-identical result;
evaluators pickle without their lookup tables (rebuilt from the label set on loading).

``pixel_accuracy`` (correct / evaluated pixels) is *our* addition: the official script's
``evalPixelAccuracy`` option is off by default and its per-image fields are mislabelled
(``nbNotIgnoredPixels`` counts the ignored pixels, ``nbCorrectPixels`` the wrong ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import (
    FloatArray,
    IntArray,
    PickledWithoutTables,
    label_tables,
    sequential_sum,
)
from seg_perception.metrics.cityscapes.files import ArrayOrPath, as_array, check_same_shape
from seg_perception.metrics.confusion import (
    class_counts,
    confusion_matrix,
    iou_per_class,
    mean_over_defined,
    pixel_accuracy,
)

#: ``args.avgClassSize`` of ``evalPixelLevelSemanticLabeling`` (pixels, Cityscapes train set).
AVG_CLASS_SIZE: dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}


def _ratio(numerator: float, denominator: float) -> float:
    """IoU-style score: NaN where the denominator is 0, as the official script returns."""
    return float("nan") if denominator == 0 else float(numerator) / denominator


def _unknown(label_ids: IntArray, known: npt.NDArray[np.bool_]) -> list[int]:
    """The ``label_ids`` (unique, sorted) that are not known label ids."""
    return [int(v) for v in label_ids if v < 0 or v >= known.size or not known[v]]


class SemanticEvaluator(PickledWithoutTables):
    """Accumulates frames; :meth:`result` equals ``evalPixelLevelSemanticLabeling``.

    ``add(pred, gt_label_ids, gt_instance_ids)``: ``pred`` is a label-id image (not train ids),
    the ground truth the ``gtFine_labelIds`` / ``gtFine_instanceIds`` images; arrays or paths.
    Without instance ids (on any frame) iIoU is NaN.
    """

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.label_set = label_set
        self.t = label_tables(label_set)
        n = self.t.n
        self.conf: IntArray = np.zeros((n, n), np.int64)
        self.frames = 0
        self._have_instances = True
        nc = len(self.t.categories)
        # per class / category: the weighted TP and FN of every instance, in frame order
        self._tpw: list[list[FloatArray]] = [[] for _ in range(n)]
        self._fnw: list[list[FloatArray]] = [[] for _ in range(n)]
        self._cat_tpw: list[list[FloatArray]] = [[] for _ in range(nc)]
        self._cat_fnw: list[list[FloatArray]] = [[] for _ in range(nc)]

    def add(self, pred: ArrayOrPath, gt_label_ids: ArrayOrPath, gt_instance_ids: ArrayOrPath | None = None) -> IntArray:
        """One frame: (H, W) label-id prediction and ground truth, optionally the instanceIds.
        Returns the frame's (n, n) label-id confusion counts (added to the total). ConfigError
        on unknown label ids or images of different sizes."""
        t = self.t
        p = as_array(pred, "prediction")
        g = as_array(gt_label_ids, "ground-truth labelIds")
        check_same_shape(p, g, "prediction", "ground truth")
        if g.size:
            gmin, gmax = int(g.min()), int(g.max())
            if gmin < 0 or gmax >= t.n:
                raise ConfigError(f"ground truth has unknown label ids {_unknown(np.unique(g), t.known)[:5]}")
            pmin, pmax = int(p.min()), int(p.max())
            if pmin < 0 or pmax >= t.n:
                raise ConfigError(
                    f"prediction has label ids outside 0..{t.n - 1} (min {pmin}, max {pmax}); "
                    "predictions must be label ids, not train ids"
                )
        # every pixel counts: ignored ground-truth labels are kept out of the false positives
        # by the scores (fp_rows), as in the official matrix
        frame = confusion_matrix(p, g, t.n, ignore=None)
        # The label ids present are the matrix's non-empty rows: no sort of the frame's pixels.
        if not t.known[frame.sum(1) > 0].all():
            raise ConfigError(
                f"ground truth has unknown label ids {_unknown(np.flatnonzero(frame.sum(1)), t.known)[:5]}"
            )
        self.conf += frame
        self.frames += 1
        if gt_instance_ids is None:
            self._have_instances = False
            return frame
        inst = as_array(gt_instance_ids, "ground-truth instanceIds")
        check_same_shape(inst, p, "ground-truth instanceIds", "prediction")
        self._add_instances(p.ravel(), inst.astype(np.int64, copy=False).ravel())
        return frame

    def _add_instances(self, p: npt.NDArray[np.integer[Any]], inst: IntArray) -> None:
        """Record the weighted TP / FN of every ground-truth instance (id > 1000) of the frame."""
        t = self.t
        sel = inst > 1000
        if not sel.any():
            return
        ids, inv, size = np.unique(inst[sel], return_inverse=True, return_counts=True)
        lab = ids // 1000
        unknown = (lab >= t.n) | ~t.known[np.minimum(lab, t.n - 1)]
        if unknown.any():
            raise ConfigError(f"ground-truth instanceIds has unknown label ids {np.unique(lab[unknown])[:5].tolist()}")
        ps = p[sel].astype(np.int64)
        tp = np.bincount(inv, weights=(ps == lab[inv]), minlength=ids.size)
        cat = t.cat_index[lab]
        cat_tp = np.bincount(inv, weights=t.cat_member[cat[inv], ps], minlength=ids.size)
        keep = ~t.ignored[lab]
        for name in {t.name[i] for i in np.unique(lab[keep])}:
            if name not in AVG_CLASS_SIZE:
                raise ConfigError(f"no average instance size for class {name!r}")
        avg = np.array([AVG_CLASS_SIZE.get(t.name[i], np.nan) for i in lab])
        weight = avg / size.astype(np.float64)
        tpw = tp * weight
        fnw = (size - tp) * weight
        ctpw = cat_tp * weight
        cfnw = (size - cat_tp) * weight
        idx = np.flatnonzero(keep)
        for c in np.unique(lab[idx]):
            m = idx[lab[idx] == c]
            self._tpw[c].append(tpw[m])
            self._fnw[c].append(fnw[m])
        for ci, cname in enumerate(t.categories):
            if cname not in t.inst_categories:
                continue
            m = idx[cat[idx] == ci]
            if m.size:
                self._cat_tpw[ci].append(ctpw[m])
                self._cat_fnw[ci].append(cfnw[m])

    def merge(self, other: SemanticEvaluator) -> None:
        """Append ``other``'s frames after this evaluator's, as if they had been added here:
        counts add, the weighted instance lists are concatenated in frame order, so the
        sequential iIoU sums are those of one evaluator fed all frames (merging in another
        order can change their last bits). ConfigError if the label sets differ."""
        if other.t.all_labels != self.t.all_labels:
            raise ConfigError("cannot merge semantic evaluators of different label sets")
        self.conf += other.conf
        self.frames += other.frames
        self._have_instances = self._have_instances and other._have_instances
        for mine, theirs in (
            (self._tpw, other._tpw),
            (self._fnw, other._fnw),
            (self._cat_tpw, other._cat_tpw),
            (self._cat_fnw, other._cat_fnw),
        ):
            for records, more in zip(mine, theirs):
                records.extend(more)  # the arrays are never written in place: sharing them is safe

    def _class_scores(self) -> tuple[dict[str, float], dict[str, float]]:
        """{class name: IoU} and {class name: iIoU} over every label id >= 0 (NaN if ignored)."""
        t, conf = self.t, self.conf
        evaluated_rows = np.array([i for i in t.eval_ids if not t.ignored[i]], np.int64)
        class_iou = iou_per_class(conf, fp_rows=evaluated_rows)
        _, class_fp, _ = class_counts(conf, fp_rows=evaluated_rows)
        iou: dict[str, float] = {}
        iiou: dict[str, float] = {}
        inst_classes = set(t.inst_ids)
        for i in t.eval_ids:
            name = t.name[i]
            if t.ignored[i]:
                iou[name] = iiou[name] = float("nan")
                continue
            iou[name] = float(class_iou[i])
            if i not in inst_classes or not self._have_instances:
                iiou[name] = float("nan")
                continue
            # false positives lie on no ground-truth instance: unweighted, as in the official script
            tpw, fnw = sequential_sum(self._tpw[i]), sequential_sum(self._fnw[i])
            iiou[name] = _ratio(tpw, tpw + float(class_fp[i]) + fnw)
        return iou, iiou

    def _category_scores(self) -> tuple[dict[str, float], dict[str, float]]:
        """{category: IoU} and {category: iIoU}, every category (NaN where not defined)."""
        t, conf = self.t, self.conf
        iou: dict[str, float] = {}
        iiou: dict[str, float] = {}
        for ci, cat in enumerate(t.categories):
            rows_fp = np.array([i for i in t.eval_ids if not t.ignored[i] and t.by_id[i].category != cat], np.int64)
            ids = np.array(
                [lab.id for lab in t.cat_labels[cat] if not lab.ignore_in_eval and lab.id in t.by_id], np.int64
            )
            if ids.size == 0:
                iou[cat] = float("nan")
            else:
                tp = int(conf[np.ix_(ids, ids)].sum())
                fn = int(conf[ids, :].sum()) - tp
                fp = int(conf[np.ix_(rows_fp, ids)].sum()) if rows_fp.size else 0
                iou[cat] = _ratio(tp, tp + fp + fn)
            if cat not in t.inst_categories or not self._have_instances:
                iiou[cat] = float("nan")
                continue
            all_ids = np.array(t.inst_categories[cat], np.int64)
            fp = int(conf[np.ix_(rows_fp, all_ids)].sum()) if rows_fp.size and all_ids.size else 0
            tpw, fnw = sequential_sum(self._cat_tpw[ci]), sequential_sum(self._cat_fnw[ci])
            iiou[cat] = _ratio(tpw, tpw + float(fp) + fnw)
        return iou, iiou

    def result(self) -> dict[str, Any]:
        """Scores as the official result dict, restricted to what is evaluated.

        Keys: ``classes`` {name: {"iou", "iiou"}} for the evaluated classes (id order),
        ``categories`` {name: {"iou", "iiou"}} for every category (NaN where not defined),
        ``mIoU`` / ``miIoU`` (= averageScoreClasses / averageScoreInstClasses),
        ``mean_category_iou`` / ``mean_category_iiou``, ``pixel_accuracy``, ``frames``,
        ``confusion_matrix`` (label-id indexed, rows = ground truth) and ``label_ids``.
        """
        t = self.t
        iou, iiou = self._class_scores()
        ciou, ciiou = self._category_scores()
        return {
            "frames": self.frames,
            "classes": {t.name[i]: {"iou": iou[t.name[i]], "iiou": iiou[t.name[i]]} for i in t.class_ids},
            "categories": {c: {"iou": ciou[c], "iiou": ciiou[c]} for c in t.categories},
            "mIoU": mean_over_defined(iou.values()),
            "miIoU": mean_over_defined(iiou.values()),
            "mean_category_iou": mean_over_defined(ciou.values()),
            "mean_category_iiou": mean_over_defined(ciiou.values()),
            "pixel_accuracy": pixel_accuracy(self.conf, t.class_ids),
            "label_ids": list(t.eval_ids),
            "confusion_matrix": self.conf.tolist(),
        }
