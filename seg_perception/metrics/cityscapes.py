"""Cityscapes benchmark metrics, computed exactly as ``cityscapesscripts`` 2.3.0 computes them.

Three evaluators, all vectorised numpy (loops run over classes, thresholds and frames, never
over pixels), each replicating one official script line by line in its arithmetic:

* :class:`SemanticEvaluator` - ``evalPixelLevelSemanticLabeling``: per-class IoU and
  instance-weighted iIoU, their means (``averageScoreClasses`` / ``averageScoreInstClasses``),
  category IoU / iIoU and their means. The confusion matrix is indexed by *label id* (0..33).
  A pixel whose ground truth is an ``ignoreInEval`` label is counted in its row only, so a
  prediction there is never a false positive; a prediction of an ignored label (e.g. 0
  "unlabeled") on an evaluated pixel is a false negative of the true class. Per-class IoU is NaN
  for ignored labels and where TP+FP+FN = 0 (a class absent from the ground truth but predicted
  somewhere gets IoU 0 and pulls the mean down). iIoU weights every ground-truth instance's TP
  and FN pixels by ``avgClassSize[class] / instance size`` (the constants of the official
  script, :data:`AVG_CLASS_SIZE`); only instance ids strictly greater than 1000 count. Means
  skip NaN entries. Float sums are accumulated in the official order (``np.cumsum`` of the
  per-instance terms), so results are bit-identical, not merely close.
  ``pixel_accuracy`` (correct / evaluated pixels) is *our* addition: the official script's
  ``evalPixelAccuracy`` option is off by default and its per-image fields are mislabelled
  (``nbNotIgnoredPixels`` counts the ignored pixels, ``nbCorrectPixels`` the wrong ones).
* :class:`InstanceEvaluator` - ``evalInstanceLevelSemanticLabeling``: AP (mean over IoU
  thresholds 0.50:0.05:0.95) and AP50 per class, their NaN-skipping means. Matching follows
  the official rules: IoU strictly above the threshold; ground truth used only for ids >= 1000
  with at least 100 pixels (groups and small instances are ignore regions); an unmatched
  prediction is a false positive unless more than ``threshold`` of it lies on void pixels,
  groups or small instances; of several predictions matching one instance only the best scored
  is a TP, the rest are FPs; the precision/recall curve and its step-wise integral are the
  official ones. Predictions come from our instance maps (``label_id * 1000 + k``) plus a
  score per value (:meth:`InstanceEvaluator.add`) or from arbitrary, possibly overlapping binary
  masks (:meth:`InstanceEvaluator.add_masks`). :func:`write_instance_predictions` writes our
  maps in the official input format (a txt file per image listing mask PNGs with label id
  and score), so the official script can be run on our outputs.
* :class:`PanopticEvaluator` - ``evalPanopticSemanticLabeling``: PQ, SQ, RQ per class and
  for All / Things / Stuff. :func:`gt_panoptic_segments` converts a ``gtFine_instanceIds``
  image the way ``preparation/createPanopticImgs.py`` does, :func:`pred_panoptic_segments`
  converts our panoptic map (thing pixels ``label_id * 1000 + k``, other pixels the label id);
  :func:`write_panoptic_json` writes either in the COCO panoptic json + PNG format the official
  script reads. IoU sums follow the official single-process order; the official script splits
  the images over ``cpu_count()`` processes, which can change the last bits of SQ/PQ.

Official quirks kept (so that numbers match) and documented here:

* iIoU counts instance ids ``> 1000``; an instance ``label*1000 + 0`` of label 1 would be
  skipped, every other ``label*1000 + k`` is counted (k = 0 included for thing labels).
* Category iIoU exists only for categories whose labels (id >= 0) all have instances (human,
  vehicle); its false positives include predictions of the ignored caravan/trailer labels.
* In the instance evaluation "void" means an instanceIds value equal to an ignored label id,
  so pixels of caravan/trailer *instances* (29001, ...) are not void there; in the panoptic
  evaluation they are (ignored labels become VOID).
* A prediction overlapping a group that is also smaller than 100 pixels counts that
  intersection twice as ignored.
* A class with ground truth and predictions that are all ignored, and no ground truth matched,
  makes the official AP code index an empty array (IndexError); we return AP 0 there.
* A class absent from the (size-filtered) ground truth has AP NaN even if predicted (false
  positives on it are free); per-class PQ of a class with TP+FP+FN = 0 is reported as 0.0 (as
  the official tool does) and left out of the means; with no class at all in a group the
  official tool divides by zero, we return NaN.
* Our prediction converter maps pixels of thing classes that carry no instance (panoptic value
  < 1000) and pixels of ignored labels to VOID (0).

Everything here is pure numpy/OpenCV; ``cityscapesscripts`` is only needed by the tests.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.labels import Label, LabelSet, load_label_set

__all__ = [
    "AVG_CLASS_SIZE",
    "MIN_REGION_SIZE",
    "OVERLAPS",
    "InstanceEvaluator",
    "PanopticEvaluator",
    "SemanticEvaluator",
    "evaluate_instances",
    "evaluate_panoptic",
    "evaluate_semantic",
    "gt_panoptic_segments",
    "id_to_rgb",
    "panoptic_categories",
    "parse_scores",
    "pred_panoptic_segments",
    "read_png",
    "rgb_to_id",
    "write_instance_predictions",
    "write_panoptic_json",
]

ArrayOrPath = Union[np.ndarray, str, Path]

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
#: IoU thresholds of the instance-level AP (``args.overlaps``), exactly as the official array.
OVERLAPS = np.arange(0.5, 1.0, 0.05)
#: ``args.minRegionSizes[0]``: smaller ground-truth instances are ignore regions.
MIN_REGION_SIZE = 100
#: panoptic pair encoding of the official script
OFFSET = 256 * 256 * 256
VOID = 0


# --------------------------------------------------------------------------------------
# label tables


class _Tables:
    """Label-id indexed lookup tables derived from a label set (Cityscapes field semantics)."""

    def __init__(self, ls: LabelSet) -> None:
        self.label_set = ls
        self.all_labels: tuple[Label, ...] = ls.labels
        self.eval_labels = [lab for lab in ls.labels if lab.id >= 0]  # official args.evalLabels
        if not self.eval_labels:
            raise ConfigError(f"label set {ls.name!r} has no label with id >= 0")
        n = max(lab.id for lab in self.eval_labels) + 1
        if n > 256:
            raise ConfigError(f"label set {ls.name!r}: label ids must be < 256")
        self.n = n
        self.known = np.zeros(n, bool)
        self.ignored = np.ones(n, bool)
        self.has_inst = np.zeros(n, bool)
        self.name = [""] * n
        self.by_id: dict[int, Label] = {}
        for lab in self.eval_labels:  # later duplicates win, like the official id2label
            self.by_id[lab.id] = lab
        for i, lab in self.by_id.items():
            self.known[i] = True
            self.ignored[i] = lab.ignore_in_eval
            self.has_inst[i] = lab.has_instances
            self.name[i] = lab.name
        self.eval_ids = [lab.id for lab in self.eval_labels]  # conf-matrix rows/cols, file order
        self.valid = self.known & ~self.ignored  # evaluated classes
        self.class_ids = [i for i in self.eval_ids if self.valid[i]]
        # categories in order of first appearance (official category2labels), all labels incl. id < 0
        self.categories: list[str] = list(dict.fromkeys(lab.category for lab in ls.labels))
        self.cat_labels = {c: [lab for lab in ls.labels if lab.category == c] for c in self.categories}
        self.cat_index = np.full(n, -1, np.int64)
        for i, lab in self.by_id.items():
            self.cat_index[i] = self.categories.index(lab.category)
        # classes of the instance statistics / instance eval: hasInstances and not ignoreInEval
        self.inst_ids = [lab.id for lab in self.eval_labels if lab.has_instances and not lab.ignore_in_eval]
        self.inst_ids = list(dict.fromkeys(self.inst_ids))
        # categories whose labels (id >= 0) all have instances, with those label ids
        self.inst_categories: dict[str, list[int]] = {}
        for c in self.categories:
            ids = []
            ok = True
            for lab in self.cat_labels[c]:
                if lab.id < 0:
                    continue
                if not lab.has_instances:
                    ok = False
                    break
                ids.append(lab.id)
            if ok:
                self.inst_categories[c] = ids
        # (n_categories, 256): predicted label id belongs to the category's instance labels
        self.cat_member = np.zeros((len(self.categories), 256), bool)
        for c, ids in self.inst_categories.items():
            self.cat_member[self.categories.index(c), ids] = True
        # void ids of the instance-level evaluation (all ignoreInEval ids, -1 included)
        self.void_ids = np.array([lab.id for lab in ls.labels if lab.ignore_in_eval], np.int64)
        # 65536-entry LUTs over instanceIds values
        values = np.arange(65536, dtype=np.int64)
        lab_of_value = np.where(values < 1000, values, values // 1000)
        self.value_label = lab_of_value  # Instance.getLabelID
        in_range = lab_of_value < n
        lab_clip = np.where(in_range, lab_of_value, 0)
        self.value_known = in_range & self.known[lab_clip]
        self.value_void = np.isin(values, self.void_ids)


def _default_label_set() -> LabelSet:
    try:
        return load_label_set("cityscapes")
    except (ConfigError, FileNotFoundError):
        return load_label_set(Path(__file__).resolve().parents[2] / "config" / "labels" / "cityscapes.yaml")


@functools.lru_cache(maxsize=8)
def _tables_for(ls: LabelSet | None) -> _Tables:
    return _Tables(ls if ls is not None else _default_label_set())


def _tables(label_set: LabelSet | None) -> _Tables:
    try:
        return _tables_for(label_set)
    except TypeError:  # unhashable label set (should not happen: LabelSet is frozen)
        return _Tables(label_set if label_set is not None else _default_label_set())


# --------------------------------------------------------------------------------------
# I/O helpers


def read_png(path: str | Path, what: str = "image") -> np.ndarray:
    """Read a single-channel PNG unchanged (8 or 16 bit); ConfigError if missing or not 2-D."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ConfigError(f"cannot read {what} {p}")
    if arr.ndim != 2:
        raise ConfigError(f"{what} {p} must be single-channel, got shape {arr.shape}")
    return arr


def _as_array(x: ArrayOrPath, what: str) -> np.ndarray:
    if isinstance(x, (str, Path)):
        return read_png(x, what)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ConfigError(f"{what} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "ui":
        raise ConfigError(f"{what} must be an integer array, got {arr.dtype}")
    return arr


def _check_same_shape(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"{what_a} {a.shape[1]}x{a.shape[0]} and {what_b} {b.shape[1]}x{b.shape[0]} differ in size")


def _seq_sum(parts: list[np.ndarray]) -> float:
    """Left-to-right float sum starting at 0.0, as ``total += x`` in a Python loop."""
    if not parts:
        return 0.0
    a = np.concatenate(parts).astype(np.float64)
    return float(np.cumsum(a)[-1]) if a.size else 0.0


def _score_average(values: Iterable[float]) -> float:
    """Official ``getScoreAverage``: mean of the non-NaN entries, NaN if none."""
    n, s = 0, 0.0
    for v in values:
        if not math.isnan(v):
            n += 1
            s += v
    return s / n if n else float("nan")


def parse_scores(scores: Mapping | Iterable) -> dict[int, float]:
    """Instance scores as ``{instance map value: score}``, from a mapping (keys may be strings,
    as in a JSON file) or an iterable of ``(value, score)`` pairs; later entries win."""
    items = scores.items() if isinstance(scores, Mapping) else scores
    out: dict[int, float] = {}
    try:
        for value, score in items:
            v = int(value)
            s = float(score)
            if v < 1000 or v > 65535:
                raise ConfigError(f"instance value {v} is not label_id*1000+k (1000..65535)")
            if not math.isfinite(s):
                raise ConfigError(f"instance {v} has a non-finite score {score!r}")
            out[v] = s
    except (TypeError, ValueError) as err:
        raise ConfigError(f"instance scores must be (value, score) pairs: {err}") from err
    return out


# --------------------------------------------------------------------------------------
# pixel-level semantic labeling


class SemanticEvaluator:
    """Accumulates frames; :meth:`result` equals ``evalPixelLevelSemanticLabeling``.

    ``add(pred, gt_label_ids, gt_instance_ids)``: ``pred`` is a label-id image (not train ids),
    the ground truth the ``gtFine_labelIds`` / ``gtFine_instanceIds`` images; arrays or paths.
    Without instance ids (on any frame) iIoU is NaN.
    """

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.t = _tables(label_set)
        n = self.t.n
        self.conf = np.zeros((n, n), np.uint64)
        self.frames = 0
        self._have_instances = True
        nc = len(self.t.categories)
        self._tpw: list[list[np.ndarray]] = [[] for _ in range(n)]
        self._fnw: list[list[np.ndarray]] = [[] for _ in range(n)]
        self._cat_tpw: list[list[np.ndarray]] = [[] for _ in range(nc)]
        self._cat_fnw: list[list[np.ndarray]] = [[] for _ in range(nc)]

    def add(self, pred: ArrayOrPath, gt_label_ids: ArrayOrPath, gt_instance_ids: ArrayOrPath | None = None) -> None:
        t = self.t
        p = _as_array(pred, "prediction")
        g = _as_array(gt_label_ids, "ground-truth labelIds")
        _check_same_shape(p, g, "prediction", "ground truth")
        g64 = g.astype(np.int64, copy=False).ravel()
        p64 = p.astype(np.int64, copy=False).ravel()
        if g64.size:
            gmin, gmax = int(g64.min()), int(g64.max())
            if gmin < 0 or gmax >= t.n or not t.known[np.unique(g64)].all():
                bad = [int(v) for v in np.unique(g64) if v < 0 or v >= t.n or not t.known[v]]
                raise ConfigError(f"ground truth has unknown label ids {bad[:5]}")
            pmin, pmax = int(p64.min()), int(p64.max())
            if pmin < 0 or pmax >= t.n:
                raise ConfigError(
                    f"prediction has label ids outside 0..{t.n - 1} (min {pmin}, max {pmax}); "
                    "predictions must be label ids, not train ids"
                )
        counts = np.bincount(g64 * t.n + p64, minlength=t.n * t.n).reshape(t.n, t.n)
        self.conf += counts.astype(np.uint64)
        self.frames += 1
        if gt_instance_ids is None:
            self._have_instances = False
            return
        inst = _as_array(gt_instance_ids, "ground-truth instanceIds")
        _check_same_shape(inst, p, "ground-truth instanceIds", "prediction")
        self._add_instances(p64, inst.astype(np.int64, copy=False).ravel())

    def _add_instances(self, p64: np.ndarray, inst: np.ndarray) -> None:
        t = self.t
        sel = inst > 1000
        if not sel.any():
            return
        ids, inv, size = np.unique(inst[sel], return_inverse=True, return_counts=True)
        lab = ids // 1000
        unknown = (lab >= t.n) | ~t.known[np.minimum(lab, t.n - 1)]
        if unknown.any():
            raise ConfigError(f"ground-truth instanceIds has unknown label ids {np.unique(lab[unknown])[:5].tolist()}")
        ps = p64[sel]
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

    # -- official score functions, vectorised over the confusion matrix

    def _class_scores(self) -> tuple[dict[str, float], dict[str, float]]:
        t, conf = self.t, self.conf.astype(np.int64)
        not_ign_rows = np.array([i for i in t.eval_ids if not t.ignored[i]], np.int64)
        col_valid = conf[not_ign_rows, :].sum(0)
        iou: dict[str, float] = {}
        iiou: dict[str, float] = {}
        inst_classes = set(t.inst_ids)
        for i in t.eval_ids:
            name = t.name[i]
            if t.ignored[i]:
                iou[name] = iiou[name] = float("nan")
                continue
            tp = int(conf[i, i])
            fn = int(conf[i, :].sum()) - tp
            fp = int(col_valid[i]) - tp  # notIgnored rows without the label itself
            denom = tp + fp + fn
            iou[name] = float("nan") if denom == 0 else float(tp) / denom
            if i not in inst_classes or not self._have_instances:
                iiou[name] = float("nan")
                continue
            tpw, fnw = _seq_sum(self._tpw[i]), _seq_sum(self._fnw[i])
            d = tpw + float(fp) + fnw
            iiou[name] = float("nan") if d == 0 else tpw / d
        return iou, iiou

    def _category_scores(self) -> tuple[dict[str, float], dict[str, float]]:
        t, conf = self.t, self.conf.astype(np.int64)
        iou: dict[str, float] = {}
        iiou: dict[str, float] = {}
        for ci, cat in enumerate(t.categories):
            rows_fp = np.array([i for i in t.eval_ids if not t.ignored[i] and t.by_id[i].category != cat], np.int64)
            ids = [lab.id for lab in t.cat_labels[cat] if not lab.ignore_in_eval and lab.id in t.by_id]
            if not ids:
                iou[cat] = float("nan")
            else:
                tp = int(conf[np.ix_(ids, ids)].sum())
                fn = int(conf[ids, :].sum()) - tp
                fp = int(conf[np.ix_(rows_fp, ids)].sum()) if rows_fp.size else 0
                denom = tp + fp + fn
                iou[cat] = float("nan") if denom == 0 else float(tp) / denom
            if cat not in t.inst_categories or not self._have_instances:
                iiou[cat] = float("nan")
                continue
            all_ids = t.inst_categories[cat]
            fp = int(conf[np.ix_(rows_fp, all_ids)].sum()) if rows_fp.size and all_ids else 0
            tpw, fnw = _seq_sum(self._cat_tpw[ci]), _seq_sum(self._cat_fnw[ci])
            d = tpw + float(fp) + fnw
            iiou[cat] = float("nan") if d == 0 else tpw / d
        return iou, iiou

    def result(self) -> dict:
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
        conf = self.conf.astype(np.int64)
        rows = conf[t.class_ids, :]
        evaluated = int(rows.sum())
        correct = int(conf[t.class_ids, t.class_ids].sum())
        return {
            "frames": self.frames,
            "classes": {t.name[i]: {"iou": iou[t.name[i]], "iiou": iiou[t.name[i]]} for i in t.class_ids},
            "categories": {c: {"iou": ciou[c], "iiou": ciiou[c]} for c in t.categories},
            "mIoU": _score_average(iou.values()),
            "miIoU": _score_average(iiou.values()),
            "mean_category_iou": _score_average(ciou.values()),
            "mean_category_iiou": _score_average(ciiou.values()),
            "pixel_accuracy": correct / evaluated if evaluated else float("nan"),
            "label_ids": list(t.eval_ids),
            "confusion_matrix": self.conf.tolist(),
        }


def evaluate_semantic(
    frames: Iterable[tuple[ArrayOrPath, ArrayOrPath, ArrayOrPath | None]], label_set: LabelSet | None = None
) -> dict:
    """``SemanticEvaluator`` over ``(pred, gt_label_ids, gt_instance_ids)`` triples."""
    ev = SemanticEvaluator(label_set)
    for pred, gt, inst in frames:
        ev.add(pred, gt, inst)
    return ev.result()


# --------------------------------------------------------------------------------------
# instance-level semantic labeling


class InstanceEvaluator:
    """Accumulates frames; :meth:`result` equals ``evalInstanceLevelSemanticLabeling``
    (``distanceAvailable = False``: min region size 100, no distance filter)."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.t = _tables(label_set)
        self.frames = 0
        # ground-truth instances (all values whose label is an instance class)
        self._gt_id: list[np.ndarray] = []
        self._gt_pc: list[np.ndarray] = []
        # predictions
        self._p_lab: list[np.ndarray] = []
        self._p_conf: list[np.ndarray] = []
        self._p_pc: list[np.ndarray] = []
        self._p_void: list[np.ndarray] = []
        # (prediction, gt) pairs with a non-empty intersection and the same label
        self._pair_p: list[np.ndarray] = []
        self._pair_g: list[np.ndarray] = []
        self._pair_i: list[np.ndarray] = []
        self._n_gt = 0
        self._n_pred = 0

    # -- per-frame records

    def _gt_records(self, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Instance-class gt values (sorted), their pixel counts, and a value -> index LUT."""
        t = self.t
        vals, counts = np.unique(gt, return_counts=True)
        if not t.value_known[vals].all():
            bad = vals[~t.value_known[vals]]
            raise ConfigError(f"ground-truth instanceIds has values of unknown labels {bad[:5].tolist()}")
        keep = np.isin(t.value_label[vals], t.inst_ids)
        vals, counts = vals[keep], counts[keep]
        lut = np.full(65536, -1, np.int64)
        lut[vals] = np.arange(vals.size) + self._n_gt
        return vals, counts, lut

    def _prepare_gt(self, gt_instance_ids: ArrayOrPath, shape_of: np.ndarray | None) -> np.ndarray:
        gt = _as_array(gt_instance_ids, "ground-truth instanceIds")
        if shape_of is not None:
            _check_same_shape(shape_of, gt, "prediction", "ground truth")
        g = gt.astype(np.int64, copy=False)
        if g.size and (g.min() < 0 or g.max() > 65535):
            raise ConfigError("ground-truth instanceIds must be 0..65535")
        return g

    def add(self, gt_instance_ids: ArrayOrPath, instance_map: ArrayOrPath, scores: Mapping | Iterable) -> None:
        """One frame: our instance map (``label_id*1000 + k``, 0 = none) and a score per value.

        Every listed value is one prediction (the mask ``instance_map == value``, class
        ``value // 1000``), as :func:`write_instance_predictions` writes it for the official
        script; values of non-instance or ignored classes and empty masks are skipped, like there.
        """
        t = self.t
        pm = _as_array(instance_map, "instance map").astype(np.int64, copy=False)
        if pm.size and (pm.min() < 0 or pm.max() > 65535):
            raise ConfigError("instance map values must be 0..65535")
        g = self._prepare_gt(gt_instance_ids, pm)
        sc = parse_scores(scores)
        gvals, gcounts, glut = self._gt_records(g)
        values = np.array(list(sc.keys()), np.int64)
        confs = np.array(list(sc.values()), np.float64)
        labels = values // 1000
        if values.size:
            unknown = (labels >= t.n) | ~t.known[np.minimum(labels, t.n - 1)]
            if unknown.any():
                raise ConfigError(f"instance values {values[unknown][:5].tolist()} have unknown label ids")
        pv, pcnt = np.unique(pm.ravel(), return_counts=True)
        pc_lut = np.zeros(65536, np.int64)
        pc_lut[pv] = pcnt
        pc = pc_lut[values] if values.size else np.zeros(0, np.int64)
        keep = np.isin(labels, t.inst_ids) & (pc > 0)
        values, confs, labels, pc = values[keep], confs[keep], labels[keep], pc[keep]
        # joint histogram of (gt value, prediction value)
        key = g.ravel() * 65536 + pm.ravel()
        uk, inter = np.unique(key, return_counts=True)
        kg, kp = uk // 65536, uk % 65536
        pidx_lut = np.full(65536, -1, np.int64)
        pidx_lut[values] = np.arange(values.size)
        kpi = pidx_lut[kp]
        onpred = kpi >= 0
        void = np.bincount(
            kpi[onpred & t.value_void[kg]], weights=inter[onpred & t.value_void[kg]], minlength=values.size
        ).astype(np.int64)
        gi = glut[kg]
        plab = np.append(labels, -1)[kpi]  # -1 picks the sentinel: not a prediction
        pair = onpred & (gi >= 0) & (t.value_label[kg] == plab)
        self._store(gvals, gcounts, labels, confs, pc, void, kpi[pair], gi[pair], inter[pair])

    def add_masks(
        self,
        gt_instance_ids: ArrayOrPath,
        masks: Sequence[np.ndarray],
        label_ids: Sequence[int],
        scores: Sequence[float],
    ) -> None:
        """One frame of arbitrary (possibly overlapping) binary masks with label id and score,
        the official input format in memory. Loops over masks; each mask is vectorised."""
        t = self.t
        if not (len(masks) == len(label_ids) == len(scores)):
            raise ConfigError("masks, label_ids and scores must have the same length")
        g = self._prepare_gt(gt_instance_ids, None)
        gvals, gcounts, glut = self._gt_records(g)
        labs, confs, pcs, voids, pp, pg, pi = [], [], [], [], [], [], []
        for m, lab, s in zip(masks, label_ids, scores):
            m = np.asarray(m) != 0
            _check_same_shape(m, g, "mask", "ground truth")
            lab = int(lab)
            if lab < 0 or lab >= t.n or not t.known[lab]:
                raise ConfigError(f"mask label id {lab} is unknown")
            if lab not in t.inst_ids:
                continue
            vals, cnt = np.unique(g[m], return_counts=True)
            n = int(cnt.sum())
            if n == 0:
                continue
            k = len(labs)
            labs.append(lab)
            confs.append(float(s))
            pcs.append(n)
            voids.append(int(cnt[t.value_void[vals]].sum()))
            same = (glut[vals] >= 0) & (t.value_label[vals] == lab)
            pp.append(np.full(int(same.sum()), k, np.int64))
            pg.append(glut[vals[same]])
            pi.append(cnt[same].astype(np.int64))
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)
        self._store(
            gvals,
            gcounts,
            np.array(labs, np.int64),
            np.array(confs, np.float64),
            np.array(pcs, np.int64),
            np.array(voids, np.int64),
            cat(pp),
            cat(pg),
            cat(pi),
        )

    def _store(self, gvals, gcounts, labels, confs, pc, void, pair_p, pair_g, pair_i) -> None:
        self._gt_id.append(gvals.astype(np.int64))
        self._gt_pc.append(gcounts.astype(np.int64))
        self._p_lab.append(labels.astype(np.int64))
        self._p_conf.append(confs.astype(np.float64))
        self._p_pc.append(pc.astype(np.int64))
        self._p_void.append(void.astype(np.int64))
        self._pair_p.append(pair_p.astype(np.int64) + self._n_pred)
        self._pair_g.append(pair_g.astype(np.int64))  # already offset through the LUT
        self._pair_i.append(pair_i.astype(np.int64))
        self._n_gt += gvals.size
        self._n_pred += labels.size
        self.frames += 1

    # -- evaluation

    @staticmethod
    def _average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fns: int) -> float:
        """The official precision/recall curve and its step-wise integral (vectorised)."""
        if y_score.size == 0:
            return 0.0  # the official code raises IndexError here (see module docstring)
        order = np.argsort(y_score)
        ys, yt = y_score[order], y_true[order]
        cs = np.cumsum(yt)
        _, uidx = np.unique(ys, return_index=True)
        n_pr = len(uidx) + 1
        n_ex = len(ys)
        n_true = cs[-1]
        cs = np.append(cs, 0)
        cum = cs[uidx - 1]
        tp = n_true - cum
        fp = n_ex - uidx - tp
        fn = cum + hard_fns
        precision = np.zeros(n_pr)
        recall = np.zeros(n_pr)
        precision[:-1] = tp / (tp + fp)
        recall[:-1] = tp / (tp + fn)
        precision[-1] = 1.0
        recall[-1] = 0.0
        rc = np.append(recall[0], recall)
        rc = np.append(rc, 0.0)
        steps = np.convolve(rc, [-0.5, 0, 0.5], "valid")
        return float(np.dot(precision, steps))

    def ap_matrix(self) -> np.ndarray:
        """(instance classes, overlaps) AP array: the official ``resultApMatrix[0]``."""
        t = self.t
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
        gt_id, gt_pc = cat(self._gt_id, np.int64), cat(self._gt_pc, np.int64)
        p_lab, p_conf = cat(self._p_lab, np.int64), cat(self._p_conf, np.float64)
        p_pc, p_void = cat(self._p_pc, np.int64), cat(self._p_void, np.int64)
        pr_p, pr_g, pr_i = cat(self._pair_p, np.int64), cat(self._pair_g, np.int64), cat(self._pair_i, np.int64)
        gt_lab = t.value_label[gt_id] if gt_id.size else np.zeros(0, np.int64)
        aps = np.zeros((len(t.inst_ids), len(OVERLAPS)), float)
        for li, c in enumerate(t.inst_ids):
            gsel = (gt_lab == c) & (gt_id >= 1000) & (gt_pc >= MIN_REGION_SIZE)
            psel = p_lab == c
            have_gt, have_pred = bool(gsel.any()), bool(psel.any())
            if not have_gt:
                aps[li, :] = float("nan")
                continue
            if not have_pred:
                aps[li, :] = 0.0
                continue
            k = p_lab[pr_p] == c
            pp, pg, pi = pr_p[k], pr_g[k], pr_i[k]
            overlap = pi / (gt_pc[pg] + p_pc[pp] - pi)
            ign_pair = pi * (gt_id[pg] < 1000) + pi * (gt_pc[pg] < MIN_REGION_SIZE)
            n_gt = int(gsel.sum())
            for oi, th in enumerate(OVERLAPS):
                m = overlap > th
                gm = m & gsel[pg]
                mg, conf = pg[gm], p_conf[pp[gm]]
                order = np.lexsort((-conf, mg))
                mg, conf = mg[order], conf[order]
                first = np.ones(mg.size, bool)
                first[1:] = mg[1:] != mg[:-1]
                tp_scores, dup_scores = conf[first], conf[~first]
                hard_fns = n_gt - int(first.sum())
                found = np.zeros(p_lab.size, bool)
                found[pp[m]] = True
                ign = p_void.copy()
                np.add.at(ign, pp, ign_pair)
                with np.errstate(divide="ignore", invalid="ignore"):
                    prop = ign / p_pc
                fp_scores = p_conf[psel & ~found & (prop <= th)]
                y_true = np.concatenate([np.ones(tp_scores.size), np.zeros(dup_scores.size + fp_scores.size)])
                y_score = np.concatenate([tp_scores, dup_scores, fp_scores])
                aps[li, oi] = self._average_precision(y_true, y_score, hard_fns)
        return aps

    def result(self) -> dict:
        """``AP`` (allAp), ``AP50`` (allAp50%), per class ``ap`` / ``ap50``, the AP matrix."""
        t = self.t
        aps = self.ap_matrix()
        o50 = np.where(np.isclose(OVERLAPS, 0.5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            all_ap = float(np.nanmean(aps)) if aps.size else float("nan")
            all_ap50 = float(np.nanmean(aps[:, o50])) if aps.size else float("nan")
            classes = {
                t.name[c]: {"ap": float(np.average(aps[i, :])), "ap50": float(np.average(aps[i, o50]))}
                for i, c in enumerate(t.inst_ids)
            }
        return {
            "frames": self.frames,
            "AP": all_ap,
            "AP50": all_ap50,
            "classes": classes,
            "overlaps": OVERLAPS.tolist(),
            "ap_matrix": aps.tolist(),
        }


def evaluate_instances(
    frames: Iterable[tuple[ArrayOrPath, ArrayOrPath, Mapping | Iterable]], label_set: LabelSet | None = None
) -> dict:
    """``InstanceEvaluator`` over ``(gt_instance_ids, instance_map, scores)`` triples."""
    ev = InstanceEvaluator(label_set)
    for gt, pm, sc in frames:
        ev.add(gt, pm, sc)
    return ev.result()


def write_instance_predictions(
    out_dir: str | Path,
    stem: str,
    instance_map: np.ndarray,
    scores: Mapping | Iterable,
    label_set: LabelSet | None = None,
) -> Path:
    """Write one frame in the official instance-level input format; returns the txt path.

    ``out_dir/<stem>.txt`` has one line ``masks/<stem>_<value>.png <label id> <score>`` per
    scored value; each mask PNG is 8-bit, 255 inside the instance. Scores are written with
    ``repr`` so they read back bit-exactly. Paths must not contain spaces (the official reader
    splits on them).
    """
    out = Path(out_dir)
    if " " in stem:
        raise ConfigError(f"frame stem {stem!r} contains a space; the official reader splits on spaces")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    pm = np.asarray(instance_map)
    lines = []
    for value, score in parse_scores(scores).items():
        rel = f"masks/{stem}_{value}.png"
        if not cv2.imwrite(str(out / rel), np.where(pm == value, 255, 0).astype(np.uint8)):
            raise ConfigError(f"cannot write {out / rel}")
        lines.append(f"{rel} {value // 1000} {float(score)!r}\n")
    txt = out / f"{stem}.txt"
    txt.write_text("".join(lines))
    return txt


# --------------------------------------------------------------------------------------
# panoptic segmentation


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> (H, W, 3) uint8 RGB (R + 256 G + 256^2 B), COCO panoptic PNG."""
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`id_to_rgb` (the official ``rgb2id``)."""
    c = np.asarray(rgb).astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def panoptic_categories(label_set: LabelSet | None = None) -> list[dict]:
    """The ``categories`` of the official conversion: labels not ignored, by label id."""
    t = _tables(label_set)
    return [
        {
            "id": int(lab.id),
            "name": lab.name,
            "color": list(lab.color),
            "supercategory": lab.category,
            "isthing": 1 if lab.has_instances else 0,
        }
        for lab in t.all_labels
        if not lab.ignore_in_eval
    ]


def _segments(ids: np.ndarray, cat: np.ndarray, crowd: np.ndarray, pan: np.ndarray) -> dict:
    """segments_info-like arrays (sorted ids, category, iscrowd, area, bbox)."""
    vals, area = np.unique(pan, return_counts=True)
    keep = vals != VOID
    vals, area = vals[keep], area[keep]
    lut = np.searchsorted(ids, vals)
    return {"id": vals.astype(np.int64), "category_id": cat[lut], "iscrowd": crowd[lut], "area": area.astype(np.int64)}


def gt_panoptic_segments(instance_ids: ArrayOrPath, label_set: LabelSet | None = None) -> tuple[np.ndarray, dict]:
    """``gtFine_instanceIds`` -> (segment id image, segments) as ``createPanopticImgs.py``.

    Segment id = the instanceIds value; values of ignored labels become VOID (0); a value
    < 1000 of a label with instances is a crowd region (iscrowd 1). Segments: dict of arrays
    ``id``, ``category_id`` (label id), ``iscrowd``, ``area``.
    """
    t = _tables(label_set)
    inst = _as_array(instance_ids, "ground-truth instanceIds").astype(np.int64)
    vals = np.unique(inst)
    if not t.value_known[vals].all():
        bad = vals[~t.value_known[vals]][:5].tolist()
        raise ConfigError(f"ground-truth instanceIds has values of unknown labels {bad}")
    lab = t.value_label[vals]
    keep = ~t.ignored[lab]
    lut = np.zeros(65536, np.int64)
    lut[vals[keep]] = vals[keep]
    pan = lut[inst]
    ids = vals[keep]
    cat = lab[keep]
    crowd = ((ids < 1000) & t.has_inst[cat]).astype(np.int64)
    return pan, _segments(ids, cat, crowd, pan)


def pred_panoptic_segments(panoptic: ArrayOrPath, label_set: LabelSet | None = None) -> tuple[np.ndarray, dict]:
    """Our panoptic map (thing pixels ``label_id*1000 + k``, others the label id) -> (segment id
    image, segments). Segment id = the map value; ignored or unknown labels, and thing-class
    pixels without an instance (value < 1000), become VOID (0). Nothing is crowd."""
    t = _tables(label_set)
    pm = _as_array(panoptic, "panoptic map").astype(np.int64)
    if pm.size and (pm.min() < 0 or pm.max() > 65535):
        raise ConfigError("panoptic map values must be 0..65535")
    vals = np.unique(pm)
    lab = t.value_label[vals]
    known = t.value_known[vals]
    labc = np.where(known, lab, 0)
    keep = known & ~t.ignored[labc] & ~((vals < 1000) & t.has_inst[labc]) & (vals != VOID)
    lut = np.zeros(65536, np.int64)
    lut[vals[keep]] = vals[keep]
    pan = lut[pm]
    ids = vals[keep]
    return pan, _segments(ids, labc[keep], np.zeros(ids.size, np.int64), pan)


def _bbox(pan: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(N, 4) [x, y, w, h] of each segment id (``pan`` holds only VOID and ``ids``)."""
    H, W = pan.shape
    flat = pan.ravel()
    on = np.flatnonzero(flat != VOID)
    i = np.searchsorted(ids, flat[on])
    ys, xs = np.divmod(on, W)
    n = ids.size
    x0, y0 = np.full(n, W, np.int64), np.full(n, H, np.int64)
    x1, y1 = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    np.minimum.at(x0, i, xs)
    np.minimum.at(y0, i, ys)
    np.maximum.at(x1, i, xs)
    np.maximum.at(y1, i, ys)
    return np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], 1)


def write_panoptic_json(
    out_json: str | Path,
    frames: Iterable[tuple[str, np.ndarray, dict]],
    label_set: LabelSet | None = None,
    ground_truth: bool = False,
) -> Path:
    """Write the COCO panoptic format the official script reads: ``out_json`` plus the PNG
    folder ``out_json`` without ``.json``.

    ``frames``: ``(image_id, segment id image, segments)`` from :func:`gt_panoptic_segments`
    or :func:`pred_panoptic_segments`; ``image_id`` is the frame stem ``<city>_<seq>_<frame>``.
    With ``ground_truth=True`` the json and PNG names are those of ``createPanopticImgs.py``
    (``<stem>_gtFine_panoptic.png``, an ``images`` list, area/bbox/iscrowd per segment);
    otherwise ``<stem>_panoptic.png`` with ``id`` and ``category_id`` per segment.
    """
    out_json = Path(out_json)
    folder = out_json.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, pan, seg in frames:
        if ground_truth:
            png = f"{image_id}_gtFine_panoptic.png"
            images.append(
                {
                    "id": image_id,
                    "width": int(pan.shape[1]),
                    "height": int(pan.shape[0]),
                    "file_name": f"{image_id}_gtFine_leftImg8bit.png",
                }
            )
            bbox = _bbox(pan, seg["id"])
            info = [
                {"id": int(i), "category_id": int(c), "area": int(a), "bbox": [int(v) for v in b], "iscrowd": int(cr)}
                for i, c, a, b, cr in zip(seg["id"], seg["category_id"], seg["area"], bbox, seg["iscrowd"])
            ]
        else:
            png = f"{image_id}_panoptic.png"
            info = [{"id": int(i), "category_id": int(c)} for i, c in zip(seg["id"], seg["category_id"])]
        if not cv2.imwrite(str(folder / png), cv2.cvtColor(id_to_rgb(pan), cv2.COLOR_RGB2BGR)):
            raise ConfigError(f"cannot write {folder / png}")
        annotations.append({"image_id": image_id, "file_name": png, "segments_info": info})
    doc = {"annotations": annotations, "categories": panoptic_categories(label_set)}
    if ground_truth:
        doc["images"] = images
    out_json.write_text(json.dumps(doc, sort_keys=True, indent=4))
    return out_json


class PanopticEvaluator:
    """Accumulates frames; :meth:`result` equals ``evalPanopticSemanticLabeling``."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.label_set = label_set
        self.t = _tables(label_set)
        self.categories = panoptic_categories(label_set)
        self._cat_ids = [c["id"] for c in self.categories]
        n = self.t.n
        self.tp = np.zeros(n, np.int64)
        self.fp = np.zeros(n, np.int64)
        self.fn = np.zeros(n, np.int64)
        self._iou: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.frames = 0

    def add(self, gt_instance_ids: ArrayOrPath, panoptic: ArrayOrPath) -> None:
        """One frame: ground-truth instanceIds and our panoptic map."""
        g_pan, g_seg = gt_panoptic_segments(gt_instance_ids, self.label_set)
        p_pan, p_seg = pred_panoptic_segments(panoptic, self.label_set)
        _check_same_shape(p_pan, g_pan, "panoptic prediction", "ground truth")
        self.add_segments(g_pan, g_seg, p_pan, p_seg)

    def add_segments(self, g_pan: np.ndarray, g_seg: dict, p_pan: np.ndarray, p_seg: dict) -> None:
        """One frame from segment id images and segments (the COCO panoptic content)."""
        key = g_pan.astype(np.uint64).ravel() * np.uint64(OFFSET) + p_pan.astype(np.uint64).ravel()
        uk, inter = np.unique(key, return_counts=True)
        kg = (uk // np.uint64(OFFSET)).astype(np.int64)
        kp = (uk % np.uint64(OFFSET)).astype(np.int64)
        inter = inter.astype(np.int64)
        gid, gcat, garea = g_seg["id"], g_seg["category_id"], g_seg["area"]
        gcrowd = g_seg["iscrowd"].astype(bool)
        pid, pcat, parea = p_seg["id"], p_seg["category_id"], p_seg["area"]

        def index(ids: np.ndarray, v: np.ndarray) -> np.ndarray:
            """Position of each v in sorted ids, -1 where absent."""
            if ids.size == 0:
                return np.full(v.size, -1, np.int64)
            i = np.minimum(np.searchsorted(ids, v), ids.size - 1)
            return np.where(ids[i] == v, i, -1)

        gi, pi = index(gid, kg), index(pid, kp)
        # sentinel entries at the end, so that index -1 reads a harmless value
        gcat_s, gcrowd_s, garea_s = np.append(gcat, -1), np.append(gcrowd, True), np.append(garea, 0)
        pcat_s, parea_s = np.append(pcat, -2), np.append(parea, 0)
        void_inter = np.zeros(pid.size + 1, np.int64)
        on_void = (kg == VOID) & (pi >= 0)
        void_inter[pi[on_void]] = inter[on_void]
        cand = (gi >= 0) & (pi >= 0) & ~gcrowd_s[gi] & (gcat_s[gi] == pcat_s[pi])
        union = parea_s[pi] + garea_s[gi] - inter - void_inter[pi]
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / union
        match = cand & (iou > 0.5)
        mcat = gcat[gi[match]]
        np.add.at(self.tp, mcat, 1)
        miou = iou[match]
        for c in np.unique(mcat):  # keeps the pair order within each class
            self._iou[c].append(miou[mcat == c])
        g_matched = np.zeros(gid.size, bool)
        g_matched[gi[match]] = True
        p_matched = np.zeros(pid.size, bool)
        p_matched[pi[match]] = True
        np.add.at(self.fn, gcat[~g_matched & ~gcrowd], 1)
        # crowd region per category: the last unmatched crowd segment in segment order
        crowd_of_cat = np.full(self.t.n, -1, np.int64)
        for j in np.flatnonzero(~g_matched & gcrowd):
            crowd_of_cat[gcat[j]] = gid[j]
        ign = void_inter[:-1].copy()
        if pid.size:
            crowd_seg = np.append(crowd_of_cat[pcat], -1)[pi]
            on_crowd = (pi >= 0) & (crowd_seg >= 0) & (kg == crowd_seg)
            np.add.at(ign, pi[on_crowd], inter[on_crowd])
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = ign / parea
        np.add.at(self.fp, pcat[~p_matched & ~(frac > 0.5)], 1)
        self.frames += 1

    def result(self) -> dict:
        """``All`` / ``Things`` / ``Stuff`` {"pq", "sq", "rq", "n"} and ``per_class``
        {name: {"pq", "sq", "rq", "tp", "fp", "fn"}} (official values: 0.0 where TP+FP+FN = 0)."""
        per_class: dict[str, dict] = {}
        out: dict[str, object] = {"frames": self.frames}
        for group, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            pq = sq = rq = 0.0
            n = 0
            for cat in self.categories:
                if isthing is not None and (cat["isthing"] == 1) != isthing:
                    continue
                c = cat["id"]
                iou = _seq_sum(self._iou[c])
                tp, fp, fn = int(self.tp[c]), int(self.fp[c]), int(self.fn[c])
                if tp + fp + fn == 0:
                    vals = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                else:
                    n += 1
                    vals = {
                        "pq": iou / (tp + 0.5 * fp + 0.5 * fn),
                        "sq": iou / tp if tp != 0 else 0.0,
                        "rq": tp / (tp + 0.5 * fp + 0.5 * fn),
                    }
                    pq += vals["pq"]
                    sq += vals["sq"]
                    rq += vals["rq"]
                if isthing is None:
                    per_class[cat["name"]] = {**vals, "tp": tp, "fp": fp, "fn": fn, "isthing": bool(cat["isthing"])}
            nan = float("nan")
            out[group] = {"pq": pq / n if n else nan, "sq": sq / n if n else nan, "rq": rq / n if n else nan, "n": n}
        out["per_class"] = per_class
        return out


def evaluate_panoptic(frames: Iterable[tuple[ArrayOrPath, ArrayOrPath]], label_set: LabelSet | None = None) -> dict:
    """``PanopticEvaluator`` over ``(gt_instance_ids, panoptic_map)`` pairs."""
    ev = PanopticEvaluator(label_set)
    for gt, pan in frames:
        ev.add(gt, pan)
    return ev.result()
