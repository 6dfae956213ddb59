"""COCO mask AP of our instance maps, computed by pycocotools (the official COCO tool).

This module only converts: the ground truth ``gtFine_instanceIds`` images and our instance
maps (``label_id*1000 + k``) with per-instance scores become COCO json (RLE masks encoded with
``pycocotools.mask.encode``), and :func:`coco_mask_ap` runs ``pycocotools.cocoeval.COCOeval``
with ``iouType="segm"`` on them, unchanged. No metric arithmetic is re-implemented here.

Conversion rules: categories are the Cityscapes instance classes (``hasInstances`` and not
``ignoreInEval``), ``category_id`` = label id; a ground-truth value >= 1000 of such a class is
one object, a value < 1000 of such a class (a Cityscapes group, e.g. 26 = "cars") is a crowd
region (``iscrowd = 1``: detections on it are not false positives); other classes (ignored
caravan/trailer instances included) are not annotated. COCO has no void label, so unlike the
Cityscapes AP a prediction on void pixels is an ordinary false positive. Image ids are 1..N in
frame order, ``file_name`` is the frame stem.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import IntArray, label_tables
from seg_perception.metrics.cityscapes.files import ArrayOrPath, InstanceScores, as_array, parse_scores

_CHUNK = 32  # masks encoded per pycocotools call (bounds the (H, W, N) temporary)


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_api
    except ImportError as err:  # pragma: no cover - pycocotools is a dependency of the metrics
        raise ConfigError(f"COCO metrics need pycocotools: {err}") from err
    return mask_api


def _encode(ids: IntArray, values: IntArray) -> list[dict[str, Any]]:
    """RLEs of ``ids == v`` for each v (vectorised per chunk of masks)."""
    mask_api = _mask_api()
    out: list[dict[str, Any]] = []
    for s in range(0, values.size, _CHUNK):
        vs = values[s : s + _CHUNK]
        stack = np.asfortranarray((ids[:, :, None] == vs[None, None, :]).astype(np.uint8))
        out.extend(mask_api.encode(stack))
    return out


def _rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(v) for v in rle["size"]], "counts": counts}


def coco_ground_truth(frames: Iterable[tuple[str, ArrayOrPath]], label_set: LabelSet | None = None) -> dict[str, Any]:
    """COCO instance json (``images``, ``annotations``, ``categories``) from ``(stem,
    gtFine_instanceIds)`` pairs; image ids are 1..N in order."""
    mask_api = _mask_api()
    t = label_tables(label_set)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, (stem, inst_in) in enumerate(frames, start=1):
        inst = as_array(inst_in, "ground-truth instanceIds").astype(np.int64)
        images.append({"id": n, "file_name": str(stem), "height": int(inst.shape[0]), "width": int(inst.shape[1])})
        vals = np.unique(inst)
        vals = vals[(vals <= 65535) & np.isin(t.value_label[np.clip(vals, 0, 65535)], t.inst_ids)]
        for v, rle in zip(vals, _encode(inst, vals)):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": n,
                    "category_id": int(t.value_label[v]),
                    "segmentation": _rle_json(rle),
                    "area": float(mask_api.area(rle)),
                    "bbox": [float(b) for b in mask_api.toBbox(rle)],
                    "iscrowd": 1 if v < 1000 else 0,
                }
            )
    categories = [{"id": int(i), "name": t.name[i], "supercategory": t.by_id[i].category} for i in t.inst_ids]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_predictions(
    gt: dict[str, Any], frames: Iterable[tuple[str, ArrayOrPath, InstanceScores]], label_set: LabelSet | None = None
) -> list[dict[str, Any]]:
    """COCO results list from ``(stem, instance map, scores)``: one detection per scored value
    of an instance class whose mask is not empty; ``image_id`` looked up by stem in ``gt``."""
    t = label_tables(label_set)
    ids = {img["file_name"]: img["id"] for img in gt["images"]}
    out: list[dict[str, Any]] = []
    for stem, pm_in, scores in frames:
        if stem not in ids:
            raise ConfigError(f"prediction {stem} has no ground-truth image")
        pm = as_array(pm_in, "instance map").astype(np.int64)
        sc = parse_scores(scores)
        present = set(np.unique(pm).tolist())
        vals = np.array([v for v in sc if v in present and v // 1000 in t.inst_ids], np.int64)
        for v, rle in zip(vals, _encode(pm, vals)):
            out.append(
                {
                    "image_id": ids[stem],
                    "category_id": int(v // 1000),
                    "segmentation": _rle_json(rle),
                    "score": float(sc[int(v)]),
                }
            )
    return out


def coco_mask_ap(gt: dict[str, Any], predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Run pycocotools ``COCOeval(iouType="segm")``.

    Returns ``AP`` (0.50:0.95), ``AP50``, ``AP75``, ``APs``/``APm``/``APl``, ``AR1``/``AR10``/
    ``AR100`` (the 12 ``stats``; -1 "undefined" becomes NaN) and per-class ``classes`` {name:
    AP} from ``eval["precision"]`` (NaN for classes without ground truth).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if predictions:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(predictions)))
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": copy.deepcopy(gt["images"]),
                "categories": copy.deepcopy(gt["categories"]),
                "annotations": [],
            }
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    out: dict[str, object] = {k: (float("nan") if v < 0 else float(v)) for k, v in zip(names, ev.stats)}
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    cat_names = {c["id"]: c["name"] for c in gt["categories"]}
    classes = {}
    for k, cid in enumerate(ev.params.catIds):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        classes[cat_names[cid]] = float(p.mean()) if p.size else float("nan")
    out["classes"] = classes
    return out
