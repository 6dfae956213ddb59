"""Instance-level semantic labeling, as ``evalInstanceLevelSemanticLabeling`` computes it.

:class:`InstanceEvaluator` gives AP (mean over IoU thresholds 0.50:0.05:0.95) and AP50 per
class, and their NaN-skipping means. Matching follows the official rules: IoU strictly above
the threshold; ground truth used only for ids >= 1000 with at least 100 pixels (groups and
small instances are ignore regions); an unmatched prediction is a false positive unless more
than ``threshold`` of it lies on void pixels, groups or small instances; of several
predictions matching one instance only the best scored is a TP, the rest are FPs; the
precision/recall curve and its step-wise integral are the official ones. Predictions come
from our instance maps (``label_id * 1000 + k``) plus a score per value
(:meth:`InstanceEvaluator.add`) or from arbitrary, possibly overlapping binary masks
(:meth:`InstanceEvaluator.add_masks`).
:func:`~seg_perception.metrics.cityscapes.files.write_instance_predictions` writes our maps in
the official input format, so the official script can be run on our outputs.
:meth:`InstanceEvaluator.merge` appends another evaluator's frames (per bag in separate
processes, combined afterwards) with the same result; evaluators pickle without their lookup
tables (rebuilt from the label set on loading).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import FloatArray, IntArray, PickledWithoutTables, label_tables
from seg_perception.metrics.cityscapes.files import (
    ArrayOrPath,
    InstanceScores,
    as_array,
    check_same_shape,
    parse_scores,
)

#: IoU thresholds of the instance-level AP (``args.overlaps``), exactly as the official array.
OVERLAPS = np.arange(0.5, 1.0, 0.05)
#: ``args.minRegionSizes[0]``: smaller ground-truth instances are ignore regions.
MIN_REGION_SIZE = 100


def _concat(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _average_precision(y_true: FloatArray, y_score: FloatArray, hard_fns: int) -> float:
    """The official precision/recall curve and its step-wise integral (vectorised)."""
    if y_score.size == 0:
        return 0.0  # the official code raises IndexError here (see the package docstring)
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


class InstanceEvaluator(PickledWithoutTables):
    """Accumulates frames; :meth:`result` equals ``evalInstanceLevelSemanticLabeling``
    (``distanceAvailable = False``: min region size 100, no distance filter)."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.label_set = label_set
        self.t = label_tables(label_set)
        self.frames = 0
        # ground-truth instances (all values whose label is an instance class)
        self._gt_id: list[IntArray] = []
        self._gt_pc: list[IntArray] = []
        # predictions
        self._p_lab: list[IntArray] = []
        self._p_conf: list[FloatArray] = []
        self._p_pc: list[IntArray] = []
        self._p_void: list[IntArray] = []
        # (prediction, gt) pairs with a non-empty intersection and the same label
        self._pair_p: list[IntArray] = []
        self._pair_g: list[IntArray] = []
        self._pair_i: list[IntArray] = []
        self._n_gt = 0
        self._n_pred = 0

    def _gt_records(self, gt: IntArray) -> tuple[IntArray, IntArray, IntArray]:
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

    def _prepare_gt(self, gt_instance_ids: ArrayOrPath, shape_of: npt.NDArray[Any] | None) -> IntArray:
        gt = as_array(gt_instance_ids, "ground-truth instanceIds")
        if shape_of is not None:
            check_same_shape(shape_of, gt, "prediction", "ground truth")
        g = gt.astype(np.int64, copy=False)
        if g.size and (g.min() < 0 or g.max() > 65535):
            raise ConfigError("ground-truth instanceIds must be 0..65535")
        return g

    def add(self, gt_instance_ids: ArrayOrPath, instance_map: ArrayOrPath, scores: InstanceScores) -> None:
        """One frame: our instance map (``label_id*1000 + k``, 0 = none) and a score per value.

        Every listed value is one prediction (the mask ``instance_map == value``, class
        ``value // 1000``), as ``write_instance_predictions`` writes it for the official
        script; values of non-instance or ignored classes and empty masks are skipped, like there.
        """
        t = self.t
        pm = as_array(instance_map, "instance map").astype(np.int64, copy=False)
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
        masks: Sequence[npt.NDArray[Any]],
        label_ids: Sequence[int],
        scores: Sequence[float],
    ) -> None:
        """One frame of arbitrary (possibly overlapping) (H, W) masks (non-zero = inside) with
        label id and score, the official input format in memory. Loops over masks; each mask
        is vectorised."""
        t = self.t
        if not (len(masks) == len(label_ids) == len(scores)):
            raise ConfigError("masks, label_ids and scores must have the same length")
        g = self._prepare_gt(gt_instance_ids, None)
        gvals, gcounts, glut = self._gt_records(g)
        labs: list[int] = []
        confs: list[float] = []
        pcs: list[int] = []
        voids: list[int] = []
        pp: list[IntArray] = []
        pg: list[IntArray] = []
        pi: list[IntArray] = []
        for mask, label_id, score in zip(masks, label_ids, scores):
            m = np.asarray(mask) != 0
            check_same_shape(m, g, "mask", "ground truth")
            lab = int(label_id)
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
            confs.append(float(score))
            pcs.append(n)
            voids.append(int(cnt[t.value_void[vals]].sum()))
            same = (glut[vals] >= 0) & (t.value_label[vals] == lab)
            pp.append(np.full(int(same.sum()), k, np.int64))
            pg.append(glut[vals[same]])
            pi.append(cnt[same].astype(np.int64))
        self._store(
            gvals,
            gcounts,
            np.array(labs, np.int64),
            np.array(confs, np.float64),
            np.array(pcs, np.int64),
            np.array(voids, np.int64),
            _concat(pp),
            _concat(pg),
            _concat(pi),
        )

    def _store(
        self,
        gvals: IntArray,
        gcounts: IntArray,
        labels: IntArray,
        confs: FloatArray,
        pc: IntArray,
        void: IntArray,
        pair_p: IntArray,
        pair_g: IntArray,
        pair_i: IntArray,
    ) -> None:
        """Append one frame's records; prediction indices are offset to the running count."""
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

    def merge(self, other: InstanceEvaluator) -> None:
        """Append ``other``'s frames after this evaluator's, as if they had been added here.
        Its pairs index its own gt and prediction records, so they are shifted past ours.
        ConfigError if the label sets differ."""
        if other.t.all_labels != self.t.all_labels:
            raise ConfigError("cannot merge instance evaluators of different label sets")
        # shifted before our counts grow (and before our lists do, should other be self)
        pair_p = [p + self._n_pred for p in other._pair_p]
        pair_g = [g + self._n_gt for g in other._pair_g]
        # the arrays are never written in place: sharing them with other is safe
        self._gt_id += other._gt_id
        self._gt_pc += other._gt_pc
        self._p_lab += other._p_lab
        self._p_conf += other._p_conf
        self._p_pc += other._p_pc
        self._p_void += other._p_void
        self._pair_p += pair_p
        self._pair_g += pair_g
        self._pair_i += other._pair_i
        self._n_gt += other._n_gt
        self._n_pred += other._n_pred
        self.frames += other.frames

    def ap_matrix(self) -> FloatArray:
        """(instance classes, overlaps) AP array: the official ``resultApMatrix[0]``."""
        t = self.t
        gt_id, gt_pc = _concat(self._gt_id), _concat(self._gt_pc)
        p_lab, p_pc, p_void = _concat(self._p_lab), _concat(self._p_pc), _concat(self._p_void)
        p_conf = np.concatenate(self._p_conf) if self._p_conf else np.zeros(0, np.float64)
        pr_p, pr_g, pr_i = _concat(self._pair_p), _concat(self._pair_g), _concat(self._pair_i)
        gt_lab = t.value_label[gt_id] if gt_id.size else np.zeros(0, np.int64)
        aps = np.zeros((len(t.inst_ids), len(OVERLAPS)), float)
        for li, c in enumerate(t.inst_ids):
            gsel = (gt_lab == c) & (gt_id >= 1000) & (gt_pc >= MIN_REGION_SIZE)
            psel = p_lab == c
            if not gsel.any():
                aps[li, :] = float("nan")
                continue
            if not psel.any():
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
                aps[li, oi] = _average_precision(y_true, y_score, hard_fns)
        return aps

    def result(self) -> dict[str, Any]:
        """``AP`` (allAp), ``AP50`` (allAp50%), per class ``ap`` / ``ap50``, the AP matrix."""
        t = self.t
        aps = self.ap_matrix()
        o50 = np.where(np.isclose(OVERLAPS, 0.5))
        # all-NaN rows and columns (classes without ground truth) warn; NaN is the answer there
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
