"""``compare``: the deltas between the baseline and the candidate in a two-set fleet report,
the regressions beyond a threshold, and the frames with the largest drop as side-by-side PNGs
(camera | ground truth | baseline | candidate) in ``<out>/worst/``.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seg_perception.apps.fleet.collect import PANELS
from seg_perception.apps.fleet.drives import Drive, drive_dir
from seg_perception.apps.fleet.report import headline

BASELINE, CANDIDATE = "baseline", "candidate"


def comparison(report: Mapping[str, Any], threshold: float) -> dict[str, Any]:
    """Deltas (candidate - baseline, in points = percent) overall, per class IoU and per
    condition (mIoU, PQ); ``regressions``: every delta below ``-threshold`` points."""
    base, cand = report["metrics"][BASELINE], report["metrics"][CANDIDATE]
    deltas: dict[str, Any] = {"overall": _delta(headline(base), headline(cand))}
    base_classes = (base.get("semantic") or {}).get("classes", {})
    cand_classes = (cand.get("semantic") or {}).get("classes", {})
    deltas["classes"] = {
        name: _points(cand_classes[name]["iou"]) - _points(v["iou"]) for name, v in base_classes.items()
    }
    deltas["conditions"] = {
        c: _delta(headline(r), headline(report["conditions"][CANDIDATE].get(c, {})))
        for c, r in report["conditions"][BASELINE].items()
    }
    regressions = [
        {"where": "overall", "metric": k, "delta": v} for k, v in deltas["overall"].items() if v < -threshold
    ]
    regressions += [
        {"where": f"class {name}", "metric": "IoU", "delta": v}
        for name, v in deltas["classes"].items()
        if v < -threshold
    ]
    regressions += [
        {"where": f"condition {c or '(none)'}", "metric": k, "delta": v}
        for c, d in deltas["conditions"].items()
        for k, v in d.items()
        if v < -threshold
    ]
    return {"threshold_points": threshold, "deltas": deltas, "regressions": regressions}


def _points(value: float | None) -> float:
    return math.nan if value is None else 100 * value


def _delta(base: Mapping[str, float], cand: Mapping[str, float]) -> dict[str, float]:
    """Candidate minus baseline in points, for the metrics both have (NaN: left out)."""
    out = {}
    for key in ("mIoU", "pixel_accuracy", "PQ", "AP"):
        d = _points(cand.get(key)) - _points(base.get(key))
        if not math.isnan(d):
            out[key] = d
    return out


def copy_worst_panels(report: Mapping[str, Any], drives: Sequence[Drive], out: Path) -> list[dict[str, Any]]:
    """The side-by-side PNGs of the report's worst frames, copied to ``<out>/worst/``, worst first."""
    by_path = {d.path: d for d in drives}
    target = out / "worst"
    shutil.rmtree(target, ignore_errors=True)
    saved = []
    for rank, frame in enumerate(report["worst_frames"]):
        if not frame["delta_miou"] < 0:
            continue
        drive = by_path[frame["bag"]]
        found = sorted((drive_dir(out, drive) / PANELS).glob(f"*_frame{frame['seq']:06d}.png"))
        if not found:
            continue
        target.mkdir(exist_ok=True)
        path = target / f"{rank:02d}_{drive.key}_frame{frame['seq']:06d}.png"
        shutil.copyfile(found[0], path)
        saved.append({**frame, "png": str(path)})
    return saved


def comparison_markdown(result: Mapping[str, Any], panels: Sequence[Mapping[str, Any]]) -> str:
    lines = ["", "## Candidate - baseline (points)", ""]
    lines.append("overall: " + ", ".join(f"{k} {v:+.2f}" for k, v in result["deltas"]["overall"].items()))
    lines += ["", "| condition | " + " | ".join(("mIoU", "PQ", "AP")) + " |", "|---|---|---|---|"]
    for c, d in result["deltas"]["conditions"].items():
        lines.append(f"| {c or '(none)'} | " + " | ".join(_signed(d.get(k)) for k in ("mIoU", "PQ", "AP")) + " |")
    lines += ["", f"### Regressions beyond {result['threshold_points']:g} points", ""]
    lines += [f"- {r['where']}: {r['metric']} {r['delta']:+.2f}" for r in result["regressions"]] or ["- none"]
    if panels:
        lines += ["", "### Frames with the largest drop (camera | ground truth | baseline | candidate)", ""]
        lines += [
            f"- `{p['bag']}` frame {p['seq']}: mIoU {100 * p['delta_miou']:+.1f} points: `{p['png']}`" for p in panels
        ]
    return "\n".join(lines) + "\n"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"
