"""The fleet report: every drive's results, this run's and earlier runs', merged in the order of
the drive list (so the metrics equal one process replaying the same frames in that order),
per model set: the official metrics overall, per condition and per drive; the drives that
failed, with their errors; the worst frames. Written as ``report.json``, ``report.md``, one
``frames.parquet`` for the whole fleet and PNG charts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from seg_perception.apps.fleet.collect import FRAMES, load_metrics
from seg_perception.apps.fleet.drives import Drive, drive_dir, read_record
from seg_perception.labels import LabelSet
from seg_perception.metrics.run import format_report, jsonable
from seg_perception.metrics.stream import StreamEvaluator

WORST_FRAMES = 10


def collect_report(
    drives: Sequence[Drive], out: Path, set_names: Sequence[str], labels: LabelSet, stamp: str
) -> dict[str, Any]:
    """Merge every finished drive's results (in ``drives`` order) into the report dict."""
    totals = [StreamEvaluator(labels) for _ in set_names]
    conditions: list[dict[str, StreamEvaluator]] = [{} for _ in set_names]
    rows, tables = [], []
    for drive in drives:
        folder = drive_dir(out, drive)
        record = read_record(out, drive, stamp)
        row: dict[str, Any] = {"bag": drive.path, "condition": drive.condition, "tags": dict(drive.tags)}
        if record is None:
            rows.append({**row, "status": "not run"})
            continue
        row.update({k: record[k] for k in ("frames", "bad_frames", "scored_frames", "error", "wall_s")})
        tables.append(pq.read_table(folder / FRAMES))
        if record["error"]:
            rows.append({**row, "status": "error"})
            continue
        metrics = load_metrics(folder)
        row["metrics"] = {}
        for k, (name, m) in enumerate(zip(set_names, metrics, strict=True)):
            totals[k].merge(m.total)
            for condition, evaluator in m.conditions.items():
                conditions[k].setdefault(condition, StreamEvaluator(labels)).merge(evaluator)
            row["metrics"][name] = headline(m.total.result()) if m.total.frames else {}
        rows.append({**row, "status": "done"})
    table = pa.concat_tables(tables, promote_options="default") if tables else None
    if table is not None:
        pq.write_table(table, out / FRAMES)
    return {
        "drives": len(drives),
        "done": sum(r["status"] == "done" for r in rows),
        "errors": [{"bag": r["bag"], "error": r["error"]} for r in rows if r["status"] == "error"],
        "not_run": [r["bag"] for r in rows if r["status"] == "not run"],
        "frames": sum(r.get("frames", 0) for r in rows if r["status"] == "done"),
        "scored_frames": sum(r.get("scored_frames", 0) for r in rows if r["status"] == "done"),
        "bad_frames": sum(r.get("bad_frames", 0) for r in rows if r["status"] == "done"),
        "sets": list(set_names),
        "metrics": {name: t.result() if t.frames else {} for name, t in zip(set_names, totals, strict=True)},
        "conditions": {
            name: {c: e.result() for c, e in sorted(conds.items())}
            for name, conds in zip(set_names, conditions, strict=True)
        },
        "per_drive": rows,
        "worst_frames": worst_frames(table, set_names[0] if len(set_names) == 1 else "baseline", len(set_names)),
    }


def headline(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a person compares first: mIoU, pixel accuracy, PQ, AP (NaN where absent)."""
    sem, pan, ins = result.get("semantic") or {}, result.get("panoptic") or {}, result.get("instance") or {}
    nan = math.nan
    return {
        "frames": result.get("frames", 0),
        "mIoU": sem.get("mIoU", nan),
        "pixel_accuracy": sem.get("pixel_accuracy", nan),
        "PQ": (pan.get("All") or {}).get("pq", nan),
        "AP": ((ins.get("cityscapes") or {}).get("AP", nan)),
        "coco_AP": ((ins.get("coco") or {}).get("AP", nan)),
    }


def worst_frames(table: pa.Table | None, name: str, sets: int, count: int = WORST_FRAMES) -> list[dict[str, Any]]:
    """The scored frames with the lowest mIoU (compare: the largest drop), worst first."""
    column = "miou" if sets == 1 else "delta_miou"
    if table is None or column not in table.column_names:
        return []
    rows = table.select(["bag", "topic", "seq", "logtime", "condition", column]).to_pylist()
    rows = [r for r in rows if r[column] is not None and not math.isnan(r[column])]
    rows.sort(key=lambda r: (r[column], r["bag"], r["seq"]))
    return rows[:count]


def write_report(report: Mapping[str, Any], out: Path, title: str = "fleet") -> tuple[Path, Path]:
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(jsonable(report), indent=1) + "\n")
    md_path.write_text(report_markdown(report, title))
    charts(report, out)
    return json_path, md_path


def report_markdown(report: Mapping[str, Any], title: str = "fleet") -> str:
    lines = [
        f"# seg_perception {title} report",
        "",
        f"- drives: {report['drives']}, done {report['done']}, errors {len(report['errors'])}, "
        f"not run {len(report['not_run'])}",
        f"- frames: {report['frames']} ({report['scored_frames']} with ground truth, {report['bad_frames']} bad)",
    ]
    for err in report["errors"]:
        lines.append(f"- ERROR `{err['bag']}`: {err['error']}")
    for name in report["sets"]:
        lines += [
            "",
            f"## {name}: per condition",
            "",
            "| condition | frames | mIoU | PQ | AP |",
            "|---|---|---|---|---|",
        ]
        for condition, result in report["conditions"][name].items():
            h = headline(result)
            lines.append(
                f"| {condition or '(none)'} | {h['frames']} | {_pct(h['mIoU'])} | {_pct(h['PQ'])} | {_pct(h['AP'])} |"
            )
        lines += ["", "| drive | status | frames | mIoU | PQ | AP |", "|---|---|---|---|---|---|"]
        for row in report["per_drive"]:
            h = (row.get("metrics") or {}).get(name) or {}
            lines.append(
                f"| `{row['bag']}` | {row['status']} | {row.get('frames', '')} | {_pct(h.get('mIoU'))} | "
                f"{_pct(h.get('PQ'))} | {_pct(h.get('AP'))} |"
            )
        if report["metrics"][name]:
            lines += ["", "```", format_report(report["metrics"][name]), "```"]
    if report["worst_frames"]:
        key = "miou" if len(report["sets"]) == 1 else "delta_miou"
        lines += ["", "## Worst frames", "", f"| bag | topic | frame | condition | {key} |", "|---|---|---|---|---|"]
        for r in report["worst_frames"]:
            lines.append(f"| `{r['bag']}` | {r['topic']} | {r['seq']} | {r['condition']} | {_pct(r[key])} |")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def charts(report: Mapping[str, Any], out: Path) -> list[Path]:
    """conditions.png: mIoU and PQ per condition (one bar per model set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = sorted({c for name in report["sets"] for c in report["conditions"][name]})
    if not conditions:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(report["sets"])
    for ax, metric in zip(axes, ("mIoU", "PQ"), strict=True):
        for k, name in enumerate(report["sets"]):
            values = [headline(report["conditions"][name].get(c, {})).get(metric, math.nan) for c in conditions]
            ax.bar([i + k * width for i in range(len(conditions))], [100 * v for v in values], width, label=name)
        ax.set_xticks([i + width * (len(report["sets"]) - 1) / 2 for i in range(len(conditions))])
        ax.set_xticklabels([c or "(none)" for c in conditions])
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{metric} per condition")
        if len(report["sets"]) > 1:
            ax.legend()
    fig.tight_layout()
    path = out / "conditions.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
