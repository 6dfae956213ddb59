"""The driver's side of one drive: rows arrive from the pipeline in any order; they are taken in
frame order (a reorder buffer bounded by the frames in flight), their evaluators merged, their
table rows kept; when every frame is in, the drive's results are written to its folder and the
completion record last, so a re-run can skip it and an interrupted run loses no finished drive.

A drive folder holds ``frames.parquet`` (one row per frame), ``metrics.pkl`` (the merged
evaluators per model set: the whole drive and per condition), ``panels/`` (compare: frames the
candidate got worse on), ``outputs/`` (``--write-bags``: the output bag) and ``done.json``.
"""

from __future__ import annotations

import math
import pickle
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rosbags.rosbag2 import Writer

from seg_perception.apps.fleet.drives import Drive, write_record
from seg_perception.apps.fleet.frames import END
from seg_perception.apps.fleet.records import Prediction, unpack
from seg_perception.apps.fleet.scoring import FrameStats
from seg_perception.io import bags
from seg_perception.labels import LabelSet
from seg_perception.metrics.stream import StreamEvaluator

OUTPUTS = "outputs"  # --write-bags: the drive's output bag
METRICS = "metrics.pkl"
FRAMES = "frames.parquet"
PANELS = "panels"


@dataclass
class DriveMetrics:
    """A drive's merged evaluators for one model set: all its frames, and per condition."""

    total: StreamEvaluator
    conditions: dict[str, StreamEvaluator] = field(default_factory=dict)


class DriveCollector:
    """Takes one drive's rows (:meth:`add`) and writes its results (:meth:`finish`)."""

    def __init__(
        self,
        drive: Drive,
        folder: Path,
        set_names: Sequence[str],
        labels: LabelSet,
        keep_panels: int = 0,
        write_bag: bool = False,
        windows: int = 1,
    ) -> None:
        self.drive = drive
        self.windows = windows  # read in this many windows of log time, taken in their order
        self.folder = folder
        self.set_names = tuple(set_names)
        self.labels = labels
        self.keep_panels = keep_panels
        self.error = ""
        self.taken = 0  # frames taken: the next one's number in the drive
        self.bad_frames = 0
        self.scored = 0
        self._window = 0  # the window being taken, and its next frame
        self._next = 0
        self._ends: dict[int, tuple[int, str]] = {}  # window -> (its frames, its error), once its end row is in
        self._buffer: dict[tuple[int, int], Mapping[str, Any]] = {}
        self.metrics = [DriveMetrics(StreamEvaluator(labels)) for _ in self.set_names]
        self.rows: list[dict[str, Any]] = []
        self._panels: list[tuple[float, int, bytes]] = []
        self.started = time.monotonic()
        # The drive's folder is rewritten from scratch: a finished drive is never collected again.
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.bag = OutputBag(folder / OUTPUTS) if write_bag else None

    @property
    def complete(self) -> bool:
        return self._window >= self.windows

    def add(self, row: Mapping[str, Any]) -> None:
        window = int(row["window"])
        if row["kind"] == END:
            self._ends[window] = (int(row["seq"]), str(row["error"]))
        else:
            self._buffer[(window, int(row["seq"]))] = row
        # Frames in drive order: window after window, each in its own order. A window that
        # broke damages the drive: the windows after it are only waited for, not taken.
        while not self.complete:
            frames, error = self._ends.get(self._window, (-1, ""))
            if self.error:
                mine = [k for k in self._buffer if k[0] == self._window]
                if len(mine) < frames or frames < 0:
                    break
                for key in mine:
                    del self._buffer[key]
            elif (self._window, self._next) in self._buffer:
                self._take(self._buffer.pop((self._window, self._next)))
                self.taken += 1
                self._next += 1
                continue
            elif frames != self._next:
                break
            self.error = self.error or error
            self._window, self._next = self._window + 1, 0

    def _take(self, row: Mapping[str, Any]) -> None:
        condition = str(row["condition"])
        if row["evals"]:
            self.scored += 1
            for metrics, evaluator in zip(self.metrics, pickle.loads(row["evals"]), strict=True):
                metrics.total.merge(evaluator)
                metrics.conditions.setdefault(condition, StreamEvaluator(self.labels)).merge(evaluator)
        if row["error"]:
            self.bad_frames += 1
        stats: list[FrameStats] = pickle.loads(row["stats"]) if row["stats"] else [FrameStats()] * len(self.set_names)
        self.rows.append(self._table_row(row, stats))
        if self.bag is not None and row["pred"]:
            prediction: Prediction = unpack(row["pred"])
            self.bag.write(bags.camera_namespace(str(row["topic"])), int(row["logtime"]), prediction.messages)
        if row["panel"] and self.keep_panels:
            self._panels.append((stats[0].miou - stats[-1].miou, self.taken, bytes(row["panel"])))
            self._panels = sorted(self._panels, key=lambda p: (-p[0], p[1]))[: self.keep_panels]

    def _table_row(self, row: Mapping[str, Any], stats: Sequence[FrameStats]) -> dict[str, Any]:
        out = base_row(self.drive, str(row["error"]))
        out.update(
            seq=self.taken,  # the frame's number in the drive, whatever window it was read in
            topic=str(row["topic"]),
            logtime=int(row["logtime"]),
            condition=str(row["condition"]),
            scored=bool(row["evals"]),
            latency_ms=float(row["latency_ms"]),
            worker=int(row["worker"]),
            node=str(row["node"]),
        )
        for name, s in zip(self.set_names, stats, strict=True):
            prefix = "" if len(self.set_names) == 1 else f"{name}_"
            out.update({f"{prefix}miou": s.miou, f"{prefix}pixel_accuracy": s.pixel_accuracy})
            out.update({f"{prefix}instances": s.instances, f"{prefix}tp": list(s.tp)})
            out.update({f"{prefix}fp": list(s.fp), f"{prefix}fn": list(s.fn)})
        if len(self.set_names) == 2:
            out["delta_miou"] = stats[1].miou - stats[0].miou
        return out

    def finish(self, fingerprint: str) -> dict[str, Any]:
        """Write the drive's results and, last, its completion record; return the record."""
        if self.bag is not None:
            self.bag.close()
        rows = self.rows if not self.error else [base_row(self.drive, self.error)]
        pq.write_table(pa.Table.from_pylist(rows), self.folder / FRAMES)
        if not self.error:
            with open(self.folder / METRICS, "wb") as f:
                pickle.dump(self.metrics, f, protocol=pickle.HIGHEST_PROTOCOL)
        for rank, (_drop, seq, png) in enumerate(self._panels):
            (self.folder / PANELS).mkdir(exist_ok=True)
            (self.folder / PANELS / f"{rank:02d}_frame{seq:06d}.png").write_bytes(png)
        record = {
            "bag": self.drive.path,
            "tags": dict(self.drive.tags),
            "fingerprint": fingerprint,
            "frames": self.taken,
            "bad_frames": self.bad_frames,
            "scored_frames": self.scored,
            "error": self.error,
            "wall_s": round(time.monotonic() - self.started, 3),
        }
        write_record(self.folder, record)
        return record


class OutputBag:
    """A drive's outputs as ``replay`` writes them (MCAP), frames in order, opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Writer | None = None
        self._connections: dict[tuple[str, str], Any] = {}

    def write(self, namespace: str, logtime: int, messages: Sequence[tuple[str, str, bytes]]) -> None:
        if self._writer is None:
            self._writer = Writer(self.path, version=8, storage_plugin=bags.STORAGES["mcap"])
            self._writer.open()
        for relative, msgtype, data in messages:
            topic = f"{namespace}/{relative}"
            conn = self._connections.get((topic, msgtype))
            if conn is None:
                conn = self._writer.add_connection(topic, msgtype, typestore=bags.TYPESTORE)
                self._connections[(topic, msgtype)] = conn
            self._writer.write(conn, logtime, data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def base_row(drive: Drive, error: str) -> dict[str, Any]:
    """The columns every table row has (an error drive's only row has just these)."""
    return {
        "drive": drive.index,
        "bag": drive.path,
        "seq": -1,
        "topic": "",
        "logtime": 0,
        "condition": drive.condition,
        "scored": False,
        "latency_ms": math.nan,
        "worker": 0,
        "node": "",
        "error": error,
    }


def load_metrics(folder: Path) -> list[DriveMetrics]:
    with open(folder / METRICS, "rb") as f:
        metrics: list[DriveMetrics] = pickle.load(f)
    return metrics
