"""Panoptic segmentation, as ``evalPanopticSemanticLabeling`` computes it.

:class:`PanopticEvaluator` gives PQ, SQ, RQ per class and for All / Things / Stuff.
:func:`gt_panoptic_segments` converts a ``gtFine_instanceIds`` image the way
``preparation/createPanopticImgs.py`` does, :func:`pred_panoptic_segments` converts our
panoptic map (thing pixels ``label_id * 1000 + k``, other pixels the label id);
:func:`~seg_perception.metrics.cityscapes.files.write_panoptic_json` writes either in the COCO
panoptic json + PNG format the official script reads. IoU sums follow the official
single-process order; the official script splits the images over ``cpu_count()`` processes,
which can change the last bits of SQ/PQ. :meth:`PanopticEvaluator.merge` appends another
evaluator's frames (per bag in separate processes, combined afterwards) keeping the
single-process order; evaluators pickle without their lookup tables (rebuilt on loading).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import (
    VOID,
    FloatArray,
    IntArray,
    PickledWithoutTables,
    Segments,
    label_tables,
    panoptic_categories,
    sequential_sum,
)
from seg_perception.metrics.cityscapes.files import ArrayOrPath, as_array, check_same_shape

#: panoptic pair encoding of the official script
OFFSET = 256 * 256 * 256


def _segments(ids: IntArray, cat: IntArray, crowd: IntArray, pan: IntArray) -> Segments:
    """The segments of ``pan`` (every non-VOID value, one of the sorted ``ids``) with their
    category, iscrowd and area."""
    vals, area = np.unique(pan, return_counts=True)
    keep = vals != VOID
    vals, area = vals[keep], area[keep]
    lut = np.searchsorted(ids, vals)
    return {"id": vals.astype(np.int64), "category_id": cat[lut], "iscrowd": crowd[lut], "area": area.astype(np.int64)}


def gt_panoptic_segments(instance_ids: ArrayOrPath, label_set: LabelSet | None = None) -> tuple[IntArray, Segments]:
    """``gtFine_instanceIds`` -> (segment id image, segments) as ``createPanopticImgs.py``.

    Segment id = the instanceIds value; values of ignored labels become VOID (0); a value
    < 1000 of a label with instances is a crowd region (iscrowd 1).
    """
    t = label_tables(label_set)
    inst = as_array(instance_ids, "ground-truth instanceIds").astype(np.int64)
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


def pred_panoptic_segments(panoptic: ArrayOrPath, label_set: LabelSet | None = None) -> tuple[IntArray, Segments]:
    """Our panoptic map (thing pixels ``label_id*1000 + k``, others the label id) -> (segment id
    image, segments). Segment id = the map value; ignored or unknown labels, and thing-class
    pixels without an instance (value < 1000), become VOID (0). Nothing is crowd."""
    t = label_tables(label_set)
    pm = as_array(panoptic, "panoptic map").astype(np.int64)
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


def _index(ids: IntArray, v: IntArray) -> IntArray:
    """Position of each v in the sorted ``ids``, -1 where absent."""
    if ids.size == 0:
        return np.full(v.size, -1, np.int64)
    i = np.minimum(np.searchsorted(ids, v), ids.size - 1)
    return np.where(ids[i] == v, i, -1)


class PanopticEvaluator(PickledWithoutTables):
    """Accumulates frames; :meth:`result` equals ``evalPanopticSemanticLabeling``."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.label_set = label_set
        self.t = label_tables(label_set)
        self.categories = panoptic_categories(label_set)
        n = self.t.n
        self.tp: IntArray = np.zeros(n, np.int64)
        self.fp: IntArray = np.zeros(n, np.int64)
        self.fn: IntArray = np.zeros(n, np.int64)
        self._iou: list[list[FloatArray]] = [[] for _ in range(n)]  # matched IoUs per label id, in order
        self.frames = 0

    def add(self, gt_instance_ids: ArrayOrPath, panoptic: ArrayOrPath) -> None:
        """One frame: (H, W) ground-truth instanceIds and our panoptic map (arrays or paths)."""
        g_pan, g_seg = gt_panoptic_segments(gt_instance_ids, self.label_set)
        p_pan, p_seg = pred_panoptic_segments(panoptic, self.label_set)
        check_same_shape(p_pan, g_pan, "panoptic prediction", "ground truth")
        self.add_segments(g_pan, g_seg, p_pan, p_seg)

    def add_segments(self, g_pan: IntArray, g_seg: Segments, p_pan: IntArray, p_seg: Segments) -> None:
        """One frame from segment id images and segments (the COCO panoptic content)."""
        key = g_pan.astype(np.uint64).ravel() * np.uint64(OFFSET) + p_pan.astype(np.uint64).ravel()
        uk, inter_u = np.unique(key, return_counts=True)
        kg = (uk // np.uint64(OFFSET)).astype(np.int64)
        kp = (uk % np.uint64(OFFSET)).astype(np.int64)
        inter = inter_u.astype(np.int64)
        gid, gcat, garea = g_seg["id"], g_seg["category_id"], g_seg["area"]
        gcrowd = g_seg["iscrowd"].astype(bool)
        pid, pcat, parea = p_seg["id"], p_seg["category_id"], p_seg["area"]
        gi, pi = _index(gid, kg), _index(pid, kp)
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

    def merge(self, other: PanopticEvaluator) -> None:
        """Append ``other``'s frames after this evaluator's, as if they had been added here:
        counts add, matched IoUs are appended per class, so the sequential IoU sums are those
        of one evaluator fed all frames (merging in another order can change their last bits).
        ConfigError if the label sets differ."""
        if other.t.all_labels != self.t.all_labels:
            raise ConfigError("cannot merge panoptic evaluators of different label sets")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        for records, more in zip(self._iou, other._iou):
            records.extend(more)  # the arrays are never written in place: sharing them is safe
        self.frames += other.frames

    def result(self) -> dict[str, Any]:
        """``All`` / ``Things`` / ``Stuff`` {"pq", "sq", "rq", "n"} and ``per_class``
        {name: {"pq", "sq", "rq", "tp", "fp", "fn", "isthing"}} (official values: 0.0 where
        TP+FP+FN = 0, such classes left out of the group means; NaN for an empty group)."""
        per_class: dict[str, dict[str, Any]] = {}
        out: dict[str, Any] = {"frames": self.frames}
        for group, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            pq = sq = rq = 0.0
            n = 0
            for cat in self.categories:
                if isthing is not None and (cat["isthing"] == 1) != isthing:
                    continue
                c = cat["id"]
                iou = sequential_sum(self._iou[c])
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
