"""Evaluate prediction files against Cityscapes-layout ground truth (``seg-perception eval``).

Ground truth (``gt``): every ``<stem>_gtFine_labelIds.png`` found below ``gt`` (normally
``gt/gtFine/<split>/<city>/``, as written by :func:`seg_perception.synthetic.writers.write_cityscapes`
or the real dataset), each with its ``<stem>_gtFine_instanceIds.png`` beside it. A stem is
``<city>_<sequence>_<frame>``, e.g. ``synth_000000_000004``; stems must be unique.

Predictions (``pred``): files anywhere below ``pred`` (sub-folders allowed), per stem:

=============================  =====================================================  ==============================
file                           content                                                enables
=============================  =====================================================  ==============================
``<stem>_classes.png``         uint8 Cityscapes *label ids* (not train ids), 1 channel  IoU, iIoU, categories, accuracy
``<stem>_instances.png``       uint16 instanceIds map: ``label_id*1000 + k`` (k >= 1,   Cityscapes AP / AP50,
                               per class by descending score), 0 = no instance          COCO mask AP / AP50 / AP75
``<stem>_instances.json``      ``{"<map value>": score, ...}`` (all values >= 1000 of   (with the map above)
                               the map; a list of ``[value, score]`` pairs also works)
``<stem>_panoptic.png``        uint16: thing pixels ``label_id*1000 + k``, other pixels  PQ, SQ, RQ
                               the label id (thing-class pixels < 1000 count as void)
=============================  =====================================================  ==============================

A kind of prediction is evaluated when at least one frame has it; it must then exist for
every ground-truth frame (and every prediction must have ground truth), otherwise a
:class:`~seg_perception.errors.ConfigError` with a one-line message is raised, as for
unreadable files or images whose size differs from the ground truth.

The metrics are those of the official tools (see :mod:`seg_perception.metrics`). The result
dict (also written as JSON, NaN as ``null``) has ``frames``, ``gt``, ``pred`` and, as
available, ``semantic``, ``instance`` (``cityscapes`` and ``coco``) and ``panoptic``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.metrics.cityscapes.files import GT_INSTANCE_SUFFIX, GT_SUFFIX, files_by_stem, parse_scores, read_png
from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
from seg_perception.metrics.cityscapes.panoptic import PanopticEvaluator
from seg_perception.metrics.cityscapes.semantic import SemanticEvaluator
from seg_perception.metrics.coco import coco_ground_truth, coco_mask_ap, coco_predictions

__all__ = ["evaluate_paths", "format_report", "main_eval"]

_KINDS = {
    "classes": "_classes.png",
    "instances": "_instances.png",
    "scores": "_instances.json",
    "panoptic": "_panoptic.png",
}


def _load_scores(path: Path) -> dict[int, float]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read instance scores {path}: {str(err).splitlines()[0]}") from err
    try:
        return parse_scores(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    return x


_STDOUT: Any = object()


def evaluate_paths(
    pred: Path, gt: Path, json_out: Path | None = None, *, out: TextIO | None = _STDOUT
) -> dict[str, Any]:
    """Evaluate every prediction kind present under ``pred`` against ``gt`` (see module doc);
    print a table to ``out`` (default stdout, None: silent) and write ``json_out`` if given."""
    if out is _STDOUT:
        out = sys.stdout
    pred, gt = Path(pred), Path(gt)
    if not gt.is_dir():
        raise ConfigError(f"ground-truth folder {gt} does not exist")
    if not pred.is_dir():
        raise ConfigError(f"prediction folder {pred} does not exist")
    gts = files_by_stem(gt, GT_SUFFIX, "ground-truth labelIds")
    if not gts:
        raise ConfigError(f"no *{GT_SUFFIX} below {gt}")
    stems = sorted(gts)
    gt_inst = {}
    for s in stems:
        p = gts[s].with_name(s + GT_INSTANCE_SUFFIX)
        if not p.is_file():
            raise ConfigError(f"ground truth {s} has no {p.name} beside {gts[s].name}")
        gt_inst[s] = p
    preds = {k: files_by_stem(pred, suf, f"*{suf}") for k, suf in _KINDS.items()}
    if not any(preds[k] for k in ("classes", "instances", "panoptic")):
        raise ConfigError(f"no predictions (*_classes.png, *_instances.png, *_panoptic.png) below {pred}")
    for kind, files in preds.items():
        extra = sorted(set(files) - set(gts))
        if extra:
            raise ConfigError(f"prediction {files[extra[0]]} has no ground truth {extra[0]}{GT_SUFFIX} below {gt}")
        if files:
            missing = [s for s in stems if s not in files]
            if missing:
                raise ConfigError(
                    f"{len(missing)} of {len(stems)} frames lack {_KINDS[kind]} (first: {missing[0]}{_KINDS[kind]})"
                )
    if bool(preds["instances"]) != bool(preds["scores"]):
        have, lack = ("_instances.png", "_instances.json")
        if not preds["instances"]:
            have, lack = lack, have
        raise ConfigError(f"predictions have *{have} but no *{lack}; both are needed for instance metrics")

    sem = SemanticEvaluator() if preds["classes"] else None
    ins = InstanceEvaluator() if preds["instances"] else None
    pan = PanopticEvaluator() if preds["panoptic"] else None
    coco_gt_frames, coco_pred_frames = [], []
    for s in stems:
        try:
            labels = read_png(gts[s], "ground-truth labelIds")
            inst = read_png(gt_inst[s], "ground-truth instanceIds")
            if sem is not None:
                sem.add(read_png(preds["classes"][s], "class prediction"), labels, inst)
            if ins is not None:
                imap = read_png(preds["instances"][s], "instance prediction")
                scores = _load_scores(preds["scores"][s])
                values = np.unique(imap)
                unscored = [int(v) for v in values if v != 0 and int(v) not in scores]
                if unscored:
                    raise ConfigError(
                        f"instance value {unscored[0]} of {preds['instances'][s].name} has no score in "
                        f"{preds['scores'][s].name}"
                    )
                ins.add(inst, imap, scores)
                coco_gt_frames.append((s, inst))
                coco_pred_frames.append((s, imap, scores))
            if pan is not None:
                pan.add(inst, read_png(preds["panoptic"][s], "panoptic prediction"))
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if s in msg else f"{s}: {msg}") from err

    result: dict[str, Any] = {"frames": len(stems), "gt": str(gt), "pred": str(pred)}
    if sem is not None:
        result["semantic"] = sem.result()
    if ins is not None:
        coco_gt = coco_ground_truth(coco_gt_frames)
        result["instance"] = {
            "cityscapes": ins.result(),
            "coco": coco_mask_ap(coco_gt, coco_predictions(coco_gt, coco_pred_frames)),
        }
    if pan is not None:
        result["panoptic"] = pan.result()
    if out is not None:
        print(format_report(result), file=out)
    if json_out is not None:
        json_out = Path(json_out)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(jsonable(result), indent=1) + "\n")
    return result


def _f(v: float | None, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "    -"
    return f"{100 * v:5.1f}" if pct else f"{v:5.3f}"


def format_report(result: dict[str, Any]) -> str:
    """The readable tables of :func:`evaluate_paths` (Cityscapes script conventions)."""
    lines = [f"evaluated {result['frames']} frames: {result.get('pred', '')} vs {result.get('gt', '')}"]
    sem = result.get("semantic")
    if sem:
        lines += ["", "semantic (pixel level)     IoU   iIoU", "-" * 37]
        lines += [f"{name:<24} {_f(v['iou'])}  {_f(v['iiou'])}" for name, v in sem["classes"].items()]
        lines += ["-" * 37, f"{'mean':<24} {_f(sem['mIoU'])}  {_f(sem['miIoU'])}", ""]
        lines += ["categories                 IoU   iIoU", "-" * 37]
        lines += [
            f"{name:<24} {_f(v['iou'])}  {_f(v['iiou'])}"
            for name, v in sem["categories"].items()
            if not (math.isnan(v["iou"]) and math.isnan(v["iiou"]))
        ]
        lines += [
            "-" * 37,
            f"{'mean':<24} {_f(sem['mean_category_iou'])}  {_f(sem['mean_category_iiou'])}",
            f"{'pixel accuracy':<24} {_f(sem['pixel_accuracy'])}",
        ]
    ins = result.get("instance")
    if ins:
        cs = ins["cityscapes"]
        lines += ["", "instance (Cityscapes)       AP   AP50", "-" * 37]
        lines += [f"{name:<24} {_f(v['ap'])}  {_f(v['ap50'])}" for name, v in cs["classes"].items()]
        lines += ["-" * 37, f"{'mean':<24} {_f(cs['AP'])}  {_f(cs['AP50'])}"]
        co = ins["coco"]
        lines += [
            "",
            f"COCO mask AP {_f(co['AP'])}   AP50 {_f(co['AP50'])}   AP75 {_f(co['AP75'])}   AR100 {_f(co['AR100'])}",
        ]
    pan = result.get("panoptic")
    if pan:
        lines += ["", "panoptic                    PQ     SQ     RQ", "-" * 45]
        for name, v in pan["per_class"].items():
            seen = v["tp"] + v["fp"] + v["fn"] > 0
            lines.append(f"{name:<24} " + "  ".join(_f(v[k] if seen else None, True) for k in ("pq", "sq", "rq")))
        lines.append("-" * 45)
        for group in ("All", "Things", "Stuff"):
            g = pan[group]
            lines.append(f"{group:<24} " + "  ".join(_f(g[k], True) for k in ("pq", "sq", "rq")) + f"  n={g['n']}")
    conditions = result.get("conditions")
    if conditions:
        lines += ["", "per condition      frames   mIoU  pixel acc", "-" * 43]
        lines += [
            f"{name:<18} {v['frames']:6d}  {_f(v['mIoU'], True)}  {_f(v['pixel_accuracy'], True)}"
            for name, v in conditions.items()
        ]
    return "\n".join(lines)


def main_eval(args_pred: str | Path, args_gt: str | Path, args_json: str | Path | None = None) -> int:
    """CLI entry: evaluate, print the table, write the JSON; 0 on success.

    Errors are :class:`~seg_perception.errors.SegPerceptionError` (ConfigError) and are left
    to the caller's error boundary (``seg_perception.apps.cli.main`` prints them and returns 2).
    """
    from seg_perception.metrics.bags import evaluate_bags, is_bag

    if is_bag(args_pred) or is_bag(args_gt):
        result = evaluate_bags(args_pred, args_gt)
        print(format_report(result))
        if args_json:
            Path(args_json).parent.mkdir(parents=True, exist_ok=True)
            Path(args_json).write_text(json.dumps(jsonable(result), indent=1) + "\n")
        return 0
    evaluate_paths(Path(args_pred), Path(args_gt), Path(args_json) if args_json else None)
    return 0


if __name__ == "__main__":  # python -m seg_perception.metrics.run --pred P --gt G [--json J]
    import argparse

    from seg_perception.errors import SegPerceptionError

    ap = argparse.ArgumentParser(prog="python -m seg_perception.metrics.run", description=__doc__.splitlines()[0])
    ap.add_argument("--pred", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        raise SystemExit(main_eval(a.pred, a.gt, a.json))
    except SegPerceptionError as e:
        print(f"seg-perception: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
