"""Evaluation of result files in the official Cityscapes conventions (``seg-perception eval``
reads these when the prediction folder holds them; see :mod:`.results` for the conventions).

Ground truth: every ``<stem>_gtFine_labelIds.png`` below ``gt`` with its
``<stem>_gtFine_instanceIds.png`` beside it (the official scripts search ``gtFine/val/*/`` of
``CITYSCAPES_DATASET``; we take every split found). The panoptic ground truth is converted from
the instanceIds as ``createPanopticImgs`` converts it (proved equal in the tests), so the
panoptic json of the ground truth is not needed.

A task is evaluated when the results hold it for at least one frame; it must then be there for
every ground-truth frame, as the official scripts require. Scores are those of the official
scripts (the evaluators of this package); instance results also get COCO mask AP
(pycocotools) from the same masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import label_tables
from seg_perception.metrics.cityscapes.files import (
    GT_INSTANCE_SUFFIX,
    GT_SUFFIX,
    check_same_shape,
    files_by_stem,
    read_png,
)
from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
from seg_perception.metrics.cityscapes.panoptic import PanopticEvaluator, gt_panoptic_segments
from seg_perception.metrics.cityscapes.results import (
    find_official_results,
    find_panoptic_jsons,
    read_instance_txt,
    read_mask,
    read_panoptic_annotation,
)
from seg_perception.metrics.cityscapes.semantic import SemanticEvaluator

#: names of our own prediction files (``seg_perception.metrics.run``)
OWN_SUFFIXES = ("_classes.png", "_instances.png", "_instances.json", "_panoptic.png")
FORMATS = ("seg_perception", "cityscapes")


def ground_truth_files(gt: str | Path) -> dict[str, tuple[Path, Path]]:
    """``{stem: (labelIds path, instanceIds path)}`` of every frame below ``gt``, sorted by stem."""
    gt = Path(gt)
    if not gt.is_dir():
        raise ConfigError(f"ground-truth folder {gt} does not exist")
    found: dict[str, tuple[Path, Path]] = {}
    for stem, p in files_by_stem(gt, GT_SUFFIX, "ground-truth labelIds").items():
        inst = p.with_name(stem + GT_INSTANCE_SUFFIX)
        if not inst.is_file():
            raise ConfigError(f"ground truth {stem} has no {inst.name} beside {p.name}")
        found[stem] = (p, inst)
    if not found:
        raise ConfigError(f"no *{GT_SUFFIX} below {gt}")
    return dict(sorted(found.items()))


def detect_format(pred: str | Path, gt: str | Path) -> str:
    """``"cityscapes"`` when ``pred`` holds a COCO panoptic json or an instance txt named after a
    ground-truth frame, ``"seg_perception"`` when it holds our own prediction files, else
    ``"cityscapes"`` (label-id PNGs named after the frames); ConfigError when it holds both."""
    pred = Path(pred)
    if not pred.is_dir():
        raise ConfigError(f"prediction folder {pred} does not exist")
    stems = set(ground_truth_files(gt))
    jsons = find_panoptic_jsons(pred)
    folders = [p.with_suffix("").resolve() for p, _ in jsons]
    txts = [t for t in pred.rglob("*.txt") if any(t.name.startswith(s) for s in stems)]
    own = [
        p
        for p in pred.rglob("*")
        if p.name.endswith(OWN_SUFFIXES) and not any(p.resolve().is_relative_to(f) for f in folders)
    ]
    if (jsons or txts) and own:
        official = jsons[0][0] if jsons else txts[0]
        raise ConfigError(
            f"{pred} holds both our prediction files ({own[0].name}) and official result files ({official.name}); "
            "choose one with --format seg_perception or --format cityscapes"
        )
    return "seg_perception" if own and not (jsons or txts) else "cityscapes"


def _coco_masks(image_id: int, masks: list[tuple[np.ndarray, int, float]], inst_ids: list[int]) -> list[dict[str, Any]]:
    """COCO results of one image's masks (instance classes, non-empty), RLE-encoded."""
    from pycocotools import mask as mask_api

    out = []
    for m, label, score in masks:
        if label not in inst_ids or not m.any():
            continue
        rle = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        counts = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
        out.append(
            {
                "image_id": image_id,
                "category_id": int(label),
                "segmentation": {"size": [int(v) for v in rle["size"]], "counts": counts},
                "score": float(score),
            }
        )
    return out


def _read_masks(txt: Path, root: Path) -> list[tuple[np.ndarray, int, float]]:
    return [(read_mask(path), label, conf) for path, label, conf in read_instance_txt(txt, root)]


def evaluate_official_results(pred: str | Path, gt: str | Path, label_set: LabelSet | None = None) -> dict[str, Any]:
    """Scores of the official result files below ``pred`` against the ground truth below ``gt``.

    The dict is that of :func:`seg_perception.metrics.run.evaluate_paths` (``frames``, ``gt``,
    ``pred``, and as available ``semantic``, ``instance`` {``cityscapes``, ``coco``},
    ``panoptic``) plus ``format: "cityscapes"``. ConfigError (one line) on missing, extra-ambiguous
    or unreadable results.
    """
    from seg_perception.metrics.coco import coco_ground_truth, coco_mask_ap

    pred, gt = Path(pred), Path(gt)
    if not pred.is_dir():
        raise ConfigError(f"prediction folder {pred} does not exist")
    gts = ground_truth_files(gt)
    stems = list(gts)
    found = find_official_results(pred, stems)
    if not (found.semantic or found.instance or found.panoptic):
        raise ConfigError(
            f"no predictions below {pred} for the {len(stems)} ground-truth frames (first: {stems[0]}): expected "
            "<stem>*.png label ids, <stem>*.txt instance lists or a COCO panoptic json + folder "
            "(or our *_classes.png, *_instances.png, *_panoptic.png)"
        )
    for kind, files in (("semantic", found.semantic), ("instance", found.instance)):
        missing = [s for s in stems if files and s not in files]
        if missing:
            raise ConfigError(
                f"found no {kind} result for ground truth {missing[0]} ({len(missing)} of {len(stems)} frames lack one)"
            )
    t = label_tables(label_set)
    sem = SemanticEvaluator(label_set) if found.semantic else None
    ins = InstanceEvaluator(label_set) if found.instance else None
    pan = PanopticEvaluator(label_set) if found.panoptic else None
    coco_preds: list[dict[str, Any]] = []
    for n, s in enumerate(stems, start=1):
        labels_path, inst_path = gts[s]
        try:
            inst = read_png(inst_path, "ground-truth instanceIds")
            if sem is not None:
                sem.add(
                    read_png(found.semantic[s], "semantic result"), read_png(labels_path, "ground-truth labelIds"), inst
                )
            if ins is not None:
                masks = _read_masks(found.instance[s], pred)
                ins.add_masks(inst, [m for m, _, _ in masks], [lab for _, lab, _ in masks], [c for _, _, c in masks])
                coco_preds += _coco_masks(n, masks, t.inst_ids)
            if pan is not None and found.panoptic is not None:
                g_pan, g_seg = gt_panoptic_segments(inst, label_set)
                p_pan, p_seg = read_panoptic_annotation(found.panoptic, s, label_set)
                check_same_shape(p_pan, g_pan, "panoptic result", "ground truth")
                pan.add_segments(g_pan, g_seg, p_pan, p_seg)
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if s in msg else f"{s}: {msg}") from err
    result: dict[str, Any] = {"frames": len(stems), "gt": str(gt), "pred": str(pred), "format": "cityscapes"}
    if sem is not None:
        result["semantic"] = sem.result()
    if ins is not None:
        # image ids 1..N in stem order, as coco_ground_truth numbers them
        coco_gt = coco_ground_truth([(s, gts[s][1]) for s in stems], label_set)
        result["instance"] = {"cityscapes": ins.result(), "coco": coco_mask_ap(coco_gt, coco_preds)}
    if pan is not None:
        result["panoptic"] = pan.result()
    return result
