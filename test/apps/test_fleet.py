"""`seg-perception fleet` and `compare` on a local Ray, run as a user runs them (the command
line, in its own process), against what one process gives for the same frames in order: the
core fed frame by frame into one evaluator, and `replay` of each bag."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seg_perception.apps.fleet.frames import FRAME, read_drive
from seg_perception.apps.fleet.records import unpack
from seg_perception.apps.replay import ReplayOptions, replay_bag
from seg_perception.config.records import node_defaults
from seg_perception.io import bags
from seg_perception.io.image import decode_image
from seg_perception.metrics.run import jsonable
from seg_perception.metrics.stream import StreamEvaluator
from seg_perception.pipeline.perception import PerceptionCore
from seg_perception.resources import share_dir
from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_drive_bag
from test.apps.test_replay import corrupt_mcap_chunk

pq = pytest.importorskip("pyarrow.parquet", reason="the fleet command's extra: requirements-fleet.txt")

pytestmark = pytest.mark.slow

CONDITIONS = ["day", "night", "day", "night", "day", "night"]
CORRUPT = 3  # this drive breaks mid-way
FRAMES = 5
# The shipped models, small inputs: about 0.5 s a frame on one core, a dozen instances a frame
# (the untrained instance model of test_replay finds ~80 and takes 2.6 s).
OVERRIDES = {
    "semantic.backend": "torch",
    "semantic.device": "cpu",
    "semantic.input_height": 128,
    "semantic.input_width": 256,
    "instance.device": "cpu",
    "instance.input_height": 128,
    "instance.input_width": 256,
    "instance.score_threshold": 0.2,
}
PARAMS = [f"{k}={v}" for k, v in OVERRIDES.items()]


def make_drives(root: Path) -> list[Path]:
    paths = []
    for i, condition in enumerate(CONDITIONS):
        frames = 8 if i == CORRUPT else FRAMES
        drive = generate_drive(40 + i, frames, 320, 192, fps=10.0, condition=condition)
        paths.append(write_drive_bag(root / f"drive{i}", drive, fps=10.0, storage="mcap"))
    corrupt_mcap_chunk(paths[CORRUPT], 1)
    return paths


@pytest.fixture(scope="module")
def drives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_drives(tmp_path_factory.mktemp("drives"))


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    p = node_defaults("perception")
    p.update(OVERRIDES)
    return p


def fleet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seg_perception.apps.cli", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return env


def fleet_args(drives: list[Path], out: Path, *extra: str) -> list[str]:
    return ["fleet", *map(str, drives), "--out", str(out), "--actors", "2", *extra, *_params()]


def _params() -> list[str]:
    return [a for p in PARAMS for a in ("-p", p)]


@pytest.fixture(scope="module")
def local_run(drives: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fleet")
    result = fleet(*fleet_args(drives, out))
    assert result.returncode == 1, result.stderr[-3000:]  # one drive failed
    return {"out": out, "stdout": result.stdout, "report": json.loads((out / "report.json").read_text())}


def metrics_of(report: Mapping[str, Any], failed_frames: bool = True) -> str:
    """What must not change between runs, as text: the metrics overall, per condition, per
    drive (and, unless not ``failed_frames``, how many frames a failed drive gave before its
    fault: read in windows, those near the fault may differ)."""

    def frames(drive: Mapping[str, Any]) -> Any:
        return drive.get("frames") if failed_frames or drive["status"] == "done" else None

    keep = {
        "metrics": report["metrics"],
        "conditions": report["conditions"],
        "drives": [(d["bag"], d["status"], frames(d), d.get("metrics")) for d in report["per_drive"]],
    }
    return json.dumps(jsonable(keep), sort_keys=True)


def reference(
    drives: list[Path], params: Mapping[str, Any], models: tuple[str, ...] = ("semantic", "instance")
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One process, frames in order, one at a time: the core and one evaluator (and one per
    condition)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each fleet actor runs (2 actors on 2 cores)
    try:
        return _reference(drives, params, models)
    finally:
        torch.set_num_threads(threads)  # later tests in this process run as before


def _reference(
    drives: list[Path], params: Mapping[str, Any], models: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    core = PerceptionCore.from_params(params, models)
    total, conditions = StreamEvaluator(core.labels), {}
    for i, path in enumerate(drives):
        if i == CORRUPT:
            continue
        for row in read_drive({"drive": i, "path": str(path), "condition": ""}):
            if row["kind"] != FRAME:
                continue
            _, image = bags.decode_frame(row["raw"], row["msgtype"])
            result = core.run([image])[0]
            label = np.array(decode_image(bags.deserialize(unpack(row["gt_label_ids"]), bags.IMAGE)).pixels)
            instance = np.array(decode_image(bags.deserialize(unpack(row["gt_instance_ids"]), bags.IMAGE)).pixels)
            semantic, found = result.semantic, result.instance
            assert semantic is not None and (found is not None) == ("instance" in models)
            frame = {
                "class_map": semantic.class_map,
                "instance_map": found.instance_map if found is not None else None,
                "scores": {r.value: r.score for r in found.instances} if found is not None else None,
                "panoptic": result.panoptic,
            }
            total.add(label, instance, row["condition"], **frame)
            conditions.setdefault(row["condition"], StreamEvaluator(core.labels)).add(
                label, instance, row["condition"], **frame
            )
    return total.result(), {c: e.result() for c, e in sorted(conditions.items())}


def same(a: Any, b: Any) -> bool:
    return json.dumps(jsonable(a), sort_keys=True) == json.dumps(jsonable(b), sort_keys=True)


def test_fleet_metrics_equal_one_process_replaying_the_same_frames_in_order(
    local_run: dict[str, Any], drives: list[Path], params: dict[str, Any], tmp_path: Path
) -> None:
    report = local_run["report"]
    total, conditions = reference(drives, params)
    assert same(report["metrics"]["model"], total)
    assert same(report["conditions"]["model"], conditions)
    assert set(conditions) == {"day", "night"}
    assert report["frames"] == FRAMES * 5 and report["done"] == 5
    # and each drive's numbers are replay's for that bag
    for i in (0, 1):
        replayed = replay_bag(drives[i], tmp_path / f"replay{i}", params, ReplayOptions(progress=False))
        drive = report["per_drive"][i]
        assert drive["metrics"]["model"]["mIoU"] == replayed.metrics["semantic"]["mIoU"]
        assert drive["metrics"]["model"]["PQ"] == replayed.metrics["panoptic"]["All"]["pq"]


def test_fleet_lists_the_corrupt_drive_with_its_error_and_finishes_the_rest(local_run: dict[str, Any]) -> None:
    report = local_run["report"]
    assert [e["bag"].endswith(f"drive{CORRUPT}") for e in report["errors"]] == [True]
    assert "damaged or truncated" in report["errors"][0]["error"]
    assert f"FAILED {report['errors'][0]['bag']}" in local_run["stdout"]
    md = (local_run["out"] / "report.md").read_text()
    assert "ERROR" in md and "| night |" in md and "| day |" in md
    assert (local_run["out"] / "conditions.png").stat().st_size > 1000
    table = pq.read_table(local_run["out"] / "frames.parquet").to_pylist()
    assert len([r for r in table if r["seq"] >= 0]) == FRAMES * 5
    assert all(len(r["tp"]) == 19 and not math.isnan(r["miou"]) for r in table if r["seq"] >= 0)
    assert len({r["worker"] for r in table if r["seq"] >= 0}) == 2  # both actors did work


def test_fleet_on_a_two_node_cluster_scoring_in_a_stage_uses_both_nodes_and_reports_the_same(
    local_run: dict[str, Any], drives: list[Path], tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # Windows of 0.2 s: several read tasks per drive, spread over both nodes; scored in a
        # stage of its own (as where actors have GPUs), where the local run scored in the actors.
        extra = ("--address", cluster.address, "--window-s", "0.2", "--score", "stage")
        result = fleet(*fleet_args(drives, tmp_path, *extra))
    finally:
        cluster.shutdown()
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert metrics_of(report, failed_frames=False) == metrics_of(local_run["report"], failed_frames=False)
    table = [r for r in pq.read_table(tmp_path / "frames.parquet").to_pylist() if r["seq"] >= 0]
    assert len({r["node"] for r in table}) == 2
    local = [r for r in pq.read_table(local_run["out"] / "frames.parquet").to_pylist() if r["seq"] >= 0]
    in_order = ("bag", "seq", "topic", "logtime", "miou")
    assert [[r[k] for k in in_order] for r in table] == [[r[k] for k in in_order] for r in local]


def actor_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"RayModelWorker" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def start_fleet(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """The command in the background, its output in ``log`` (a pipe nobody reads would block it)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "seg_perception.apps.cli", *args, "--no-progress"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )


def wait_for(condition: Any, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def done_drives(out: Path) -> list[Path]:
    return sorted(out.glob("drives/*/done.json"))


def test_a_killed_model_worker_is_replaced_and_the_report_is_unchanged(
    local_run: dict[str, Any], drives: list[Path], tmp_path: Path
) -> None:
    log = tmp_path.parent / f"{tmp_path.name}.log"
    # Batches of one frame: the first drive is done while the others are still in the models.
    proc = start_fleet(fleet_args(drives, tmp_path, "--batch-size", "1"), log)
    try:
        wait_for(lambda: len(done_drives(tmp_path)) >= 1, 300, "the first drive", poll=0.05)
        victims = actor_pids()
        assert victims, "no model worker process found"
        os.kill(victims[0], signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 1, log.read_text()[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert metrics_of(report) == metrics_of(local_run["report"])
    # The kill came mid-run: frames were done by a worker started after it (the replacement).
    workers = {r["worker"] for r in pq.read_table(tmp_path / "frames.parquet").to_pylist() if r["seq"] >= 0}
    assert workers - set(victims), f"no frame was run after the kill: workers {workers}, at the kill {victims}"


def test_an_interrupted_run_resumes_with_only_the_unfinished_drives(
    local_run: dict[str, Any], drives: list[Path], tmp_path: Path
) -> None:
    log = tmp_path.parent / f"{tmp_path.name}.log"
    proc = start_fleet(fleet_args(drives, tmp_path), log)
    try:
        wait_for(lambda: len(done_drives(tmp_path)) >= 2, 300, "two drives")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, log.read_text()[-3000:]
    finished = {p.parent.name: p.stat().st_mtime_ns for p in done_drives(tmp_path)}
    assert 2 <= len(finished) < len(drives)
    result = fleet(*fleet_args(drives, tmp_path))
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    good_before = len([k for k in finished if not k.startswith(f"drive{CORRUPT}-")])
    assert report["run"]["drives_skipped"] == good_before
    for key, mtime in finished.items():  # the finished drives were not run again
        if not key.startswith(f"drive{CORRUPT}-"):
            assert (tmp_path / "drives" / key / "done.json").stat().st_mtime_ns == mtime
    assert metrics_of(report) == metrics_of(local_run["report"])


def damaged_checkpoint(path: Path) -> Path:
    """The shipped DeepLab with its classifier's road logit pushed down: road becomes other classes."""
    shipped = share_dir() / node_defaults("perception")["semantic.checkpoint"]
    state = torch.load(shipped, map_location="cpu", weights_only=False)
    state["model"]["classifier.4.bias"][0] -= 4.0
    torch.save(state, path)
    return path


def compare(drives: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    semantic = [p for p in PARAMS if p.startswith("semantic.")]
    sides = [a for side in ("baseline", "candidate") for p in semantic for a in (f"--{side}-param", p)]
    return fleet("compare", *map(str, drives), "--out", str(out), "--models", "semantic", *sides, *extra)


def test_compare_of_a_model_with_itself_reports_zero_deltas(
    drives: list[Path], params: dict[str, Any], tmp_path: Path
) -> None:
    result = compare(drives[:2], tmp_path, "--fail-on-regression", "0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    # Class maps are all these actors write: they run frames in pairs, with the metrics of
    # frames run one at a time.
    assert same(report["metrics"]["baseline"], reference(drives[:2], params, ("semantic",))[0])
    comparison = report["comparison"]
    assert comparison["regressions"] == []
    assert all(v == 0 for v in comparison["deltas"]["overall"].values())
    assert all(v in (0, None) for v in comparison["deltas"]["classes"].values())  # None: no such class


def test_compare_flags_a_damaged_model_and_shows_the_frames(drives: list[Path], tmp_path: Path) -> None:
    bad = damaged_checkpoint(tmp_path / "damaged.pth")
    result = compare(
        drives[:2], tmp_path / "out", "--candidate-param", f"semantic.checkpoint={bad}", "--fail-on-regression", "1"
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "REGRESSION class road" in result.stdout and "FAIL" in result.stdout
    comparison = json.loads((tmp_path / "out" / "report.json").read_text())["comparison"]
    assert comparison["deltas"]["classes"]["road"] < -1
    panels = comparison["worst_panels"]
    assert panels and all(Path(p["png"]).is_file() for p in panels)
    import cv2

    panel = cv2.imread(panels[0]["png"])
    assert panel.shape[1] == 4 * panel.shape[1] // 4 and panel.shape[1] >= 4 * 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fleet", "--out", "{tmp}/o"], "no bags given"),
        (["fleet", "--manifest", "{tmp}/m.txt", "--out", "{tmp}/o"], r"line 2: missing_bag is not a bag"),
        (["fleet", "{tmp}/lidar", "--out", "{tmp}/o"], "no camera topic"),
        (["fleet", "{drive}", "--out", "{tmp}/o", "--address", "127.0.0.1:1"], "cannot reach the Ray cluster"),
        (["fleet", "{drive}", "--out", "{tmp}/o", "-p", "semantic.checkpoint={tmp}/none.pth"], "file not found"),
    ],
)
def test_fleet_refuses_bad_input_with_one_line(
    drives: list[Path], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "m.txt").write_text(f"{drives[0]} day\nmissing_bag night\n")
    lidar = bags_without_camera(tmp_path / "lidar")
    assert lidar.exists()
    filled = [a.format(tmp=tmp_path, drive=drives[0]) for a in args]
    result = fleet(*filled, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("seg-perception: error:"), result.stderr
    import re

    assert re.search(message, lines[-1]), lines[-1]
    assert "Traceback" not in result.stderr


def bags_without_camera(path: Path) -> Path:
    from rosbags.rosbag2 import Writer

    with Writer(path, version=8) as writer:
        conn = writer.add_connection("/status", bags.STRING, typestore=bags.TYPESTORE)
        writer.write(conn, 1, bags.serialize(bags.TYPESTORE.types[bags.STRING](data="ok"), bags.STRING))
    return path


def with_late_ground_truth(bag: Path, out: Path, lag_ns: int) -> Path:
    """``bag`` rewritten with its ground-truth images logged ``lag_ns`` after the frames (a
    recorder that writes labels as they come; they pair by header stamp), messages and stamps
    otherwise unchanged. The condition, a String paired by log time, stays with its frame."""
    from rosbags.rosbag2 import Reader, Writer

    with Reader(bag) as reader, Writer(out, version=8) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=bags.TYPESTORE) for c in reader.connections}
        messages = [(c, t + (lag_ns if c.topic.endswith("_ids") else 0), bytes(raw)) for c, t, raw in reader.messages()]
        for conn, logtime, raw in sorted(messages, key=lambda m: m[1]):
            writer.write(conns[conn.id], logtime, raw)
    return out


def frame_rows(rows: Any) -> list[tuple[Any, ...]]:
    keys = ("topic", "logtime", "raw", "gt_label_ids", "gt_instance_ids", "condition")
    return [tuple(r[k] for k in keys) for r in rows if r["kind"] == FRAME]


def test_a_drive_read_in_windows_gives_the_frames_of_one_pass(tmp_path: Path) -> None:
    """Windows of 0.25 s over a 1.4 s drive whose ground truth is logged 0.15 s after each
    frame (so pairs straddle window ends): the same frames, in the same order, paired with
    the same ground truth, as one read of the whole drive; each window ends with its count."""
    from seg_perception.apps.fleet.frames import END, survey

    drive = generate_drive(7, 14, 160, 96, fps=10.0, condition="night")
    bag = with_late_ground_truth(write_drive_bag(tmp_path / "drive", drive, fps=10.0), tmp_path / "late", 150_000_000)
    whole = list(read_drive({"drive": 0, "path": str(bag), "condition": ""}))
    plan = survey(str(bag), 0.25)
    assert plan.frames == 14 and len(plan.windows) >= 5
    assert plan.windows[0][0] == 0 and plan.windows[-1][1] == 0  # open ends: nothing falls outside
    windowed = []
    for w, (start, stop) in enumerate(plan.windows):
        item = {"drive": 0, "path": str(bag), "condition": "", "window": w, "start": start, "stop": stop}
        rows = list(read_drive(item))
        assert rows[-1]["kind"] == END and rows[-1]["error"] == "" and rows[-1]["window"] == w
        assert rows[-1]["seq"] == len(rows) - 1 and [r["seq"] for r in rows[:-1]] == list(range(len(rows) - 1))
        windowed += rows
    assert frame_rows(windowed) == frame_rows(whole)
    assert all(r[3] and r[4] and r[5] == "night" for r in frame_rows(windowed))  # every frame met its ground truth
    assert survey(str(bag), 0).windows == [(0, 0)] and survey(str(bag), 10.0).windows == [(0, 0)]
