"""Replay's report: what ran, how fast, why it stopped and, with ground truth, the metrics;
written beside the output bag as JSON and Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.metrics.latency import percentiles_ms
from seg_perception.metrics.run import format_report, jsonable


@dataclass
class ReplayReport:
    input_bag: str
    output_bag: str
    topics: list[str]
    models: list[str]
    frames: int = 0
    bad_frames: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: str = "completed"  # completed | interrupted | bag fault: ... | limit
    first_bad: str = ""
    metrics: dict[str, Any] | None = None
    unpaired_frames: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "input_bag": self.input_bag,
            "output_bag": self.output_bag,
            "topics": self.topics,
            "models": self.models,
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "first_bad_frame": self.first_bad or None,
            "stopped": self.stopped,
            "wall_s": round(self.wall_s, 3),
            "frames_per_s": round(self.frames / self.wall_s, 3) if self.wall_s > 0 else None,
            "latency_ms": {
                **percentiles_ms(np.asarray(lat) / 1e3),
                "mean": float(np.mean(lat)) if lat else math.nan,
                "max": max(lat, default=math.nan),
            },
            "metrics": self.metrics,
            "unpaired_frames": self.unpaired_frames,
            "notes": self.notes,
        }


def report_paths(out_bag: str | Path, report: str | Path | None = None) -> tuple[Path, Path]:
    """(JSON, Markdown) report paths: ``<report>.json/.md``, default ``<out_bag>.report.*``."""
    stem = str(report) if report else str(Path(out_bag)) + ".report"
    return Path(stem + ".json"), Path(stem + ".md")


def write_report(report: ReplayReport, paths: tuple[Path, Path]) -> None:
    data = report.to_dict()
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(jsonable(data), indent=1) + "\n")
    paths[1].write_text(report_markdown(data))


def report_markdown(data: Mapping[str, Any]) -> str:
    lat = data["latency_ms"]
    lines = [
        "# seg_perception replay report",
        "",
        f"- input: `{data['input_bag']}` topics {', '.join(f'`{t}`' for t in data['topics'])}",
        f"- output: `{data['output_bag']}`; models: {', '.join(data['models'])}",
        f"- frames processed: {data['frames']}, bad frames skipped: {data['bad_frames']}; stopped: {data['stopped']}",
        f"- wall time {data['wall_s']:.1f} s ({data['frames_per_s'] or 0:.2f} frames/s)",
        f"- per-frame latency (decode + models + post-processing + encode) ms: p50 {lat['p50']:.1f}, "
        f"p95 {lat['p95']:.1f}, p99 {lat['p99']:.1f}, max {lat['max']:.1f}",
        *[f"- NOTE: {n}" for n in data["notes"]],
    ]
    if data.get("first_bad_frame"):
        lines.append(f"- first bad frame: {data['first_bad_frame']}")
    metrics = data.get("metrics")
    if metrics:
        lines += ["", "## Metrics against the bag's ground truth", "", "```", format_report(metrics), "```"]
    return "\n".join(lines) + "\n"
