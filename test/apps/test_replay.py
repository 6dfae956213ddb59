"""Offline replay: generated bags through the core into output bags, reports, and faults."""

from __future__ import annotations

import functools
import json
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from seg_perception.apps.cli import main
from seg_perception.apps.replay import ReplayOptions, replay_bag
from seg_perception.config.records import node_defaults
from seg_perception.errors import BagError, ConfigError
from seg_perception.io import bags
from seg_perception.io.compressed import decode_compressed
from seg_perception.io.image import decode_image
from seg_perception.metrics.bags import evaluate_bags
from seg_perception.pipeline.perception import PerceptionCore
from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_drive_bag

# Shipped semantic weights; an untrained instance model, small, with low thresholds so it
# produces many instances on tiny frames and the equality checks mean something.
OVERRIDES = {
    "semantic.backend": "torch",
    "semantic.device": "cpu",
    "instance.checkpoint": "",
    "instance.input_height": 128,
    "instance.input_width": 256,
    "instance.device": "cpu",
    "instance.score_threshold": 0.05,
    "instance.mask_threshold": 0.3,
}


@pytest.fixture(scope="module")
def params() -> dict:
    p = node_defaults("perception")
    p.update(OVERRIDES)
    return p


@pytest.fixture(scope="module")
def core(params: dict) -> PerceptionCore:
    return PerceptionCore.from_params(params)


def drive_bag(path: Path, frames: int = 3, storage: str = "sqlite3", compressed: str = "", seed: int = 5) -> Path:
    return write_drive_bag(
        path, generate_drive(seed, frames, 320, 192, fps=10.0), fps=10.0, storage=storage, compressed=compressed
    )


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, bags.deserialize(raw, conn.msgtype)))
    return out


def pixels(msg: object) -> np.ndarray:
    return np.array(decode_image(msg).pixels)


@pytest.mark.parametrize(("storage", "compressed"), [("sqlite3", ""), ("mcap", ""), ("mcap", "png")])
def test_replay_output_bag_equals_the_core_frame_by_frame(
    tmp_path: Path, params: dict, core: PerceptionCore, storage: str, compressed: str
) -> None:
    in_bag = drive_bag(tmp_path / "in", storage=storage, compressed=compressed)
    report = replay_bag(in_bag, tmp_path / "out", params, ReplayOptions(overlays=True, progress=False))
    assert (report.frames, report.bad_frames, report.stopped) == (3, 0, "completed")

    inputs = read_bag(in_bag)
    outputs = read_bag(tmp_path / "out")
    cam_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    for topic in (
        "semantic/class_map",
        "instance/instance_map",
        "instance/detections",
        "panoptic/panoptic_map",
        "semantic/overlay",
        "instance/overlay",
        "panoptic/overlay",
    ):
        assert len(outputs[f"/camera/{topic}"]) == 3, topic
    instances_seen = 0
    for i, (logtime, msg) in enumerate(inputs[cam_topic]):
        image = decode_compressed(msg) if compressed else decode_image(msg)
        expected = core.run([image])[0]
        got = {
            t: outputs[f"/camera/{t}"][i]
            for t in ("semantic/class_map", "instance/instance_map", "instance/detections", "panoptic/panoptic_map")
        }
        for t, (out_time, out_msg) in got.items():
            assert out_time == logtime, t  # written at the input's time ...
            assert out_msg.header.stamp == msg.header.stamp and out_msg.header.frame_id == msg.header.frame_id
        assert np.array_equal(pixels(got["semantic/class_map"][1]), expected.semantic.class_map)
        assert np.array_equal(pixels(got["instance/instance_map"][1]), expected.instance.instance_map)
        assert np.array_equal(pixels(got["panoptic/panoptic_map"][1]), expected.panoptic)
        scores = bags.detection_scores(got["instance/detections"][1])
        assert scores == pytest.approx({r.value: r.score for r in expected.instance.instances})
        instance_map = pixels(got["instance/instance_map"][1])
        for det in got["instance/detections"][1].detections:  # boxes of the map's pixels, as the nodes publish
            rows, cols = np.nonzero(instance_map == int(det.id))
            centre = (det.bbox.center.position.x, det.bbox.center.position.y)
            assert centre == ((cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2), det.id
            assert (det.bbox.size_x, det.bbox.size_y) == (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        instances_seen += len(scores)
        overlay = outputs["/camera/semantic/overlay"][i][1]
        assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", image.height, image.width)
    assert instances_seen > 0, "the instance model produced nothing: the instance checks were vacuous"
    assert len(np.unique(pixels(outputs["/camera/semantic/class_map"][0][1]))) > 3


def test_replay_report_metrics_equal_eval_of_the_bags(tmp_path: Path, params: dict) -> None:
    in_bag = drive_bag(tmp_path / "in", frames=4)
    report = replay_bag(in_bag, tmp_path / "out", params, ReplayOptions(progress=False))
    written = json.loads((tmp_path / "out.report.json").read_text())
    assert written["frames"] == 4 and written["stopped"] == "completed"
    assert set(written["latency_ms"]) >= {"p50", "p95", "p99", "mean", "max"}
    assert "## Metrics" in (tmp_path / "out.report.md").read_text()

    metrics = report.metrics
    assert metrics is not None and metrics["frames"] == 4
    from_bags = evaluate_bags(tmp_path / "out", in_bag)
    assert from_bags["semantic"]["mIoU"] == pytest.approx(metrics["semantic"]["mIoU"], abs=1e-12)
    assert from_bags["panoptic"]["All"]["pq"] == pytest.approx(metrics["panoptic"]["All"]["pq"], abs=1e-12)
    assert from_bags["instance"]["coco"]["AP"] == pytest.approx(metrics["instance"]["coco"]["AP"], nan_ok=True)
    assert sum(v["frames"] for v in metrics["conditions"].values()) == 4
    # The shipped weights segment generated roads: far above chance (1/19 classes).
    assert metrics["semantic"]["mIoU"] > 0.15 and metrics["semantic"]["pixel_accuracy"] > 0.7

    assert main(["eval", "--pred", str(tmp_path / "out"), "--gt", str(in_bag), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["semantic"]["mIoU"] == pytest.approx(
        metrics["semantic"]["mIoU"]
    )


def test_replay_of_two_cameras_batches_them_and_writes_under_each_namespace(
    tmp_path: Path, params: dict, core: PerceptionCore
) -> None:
    frames = {"/front": list(generate_drive(1, 2, 320, 192)), "/rear": list(generate_drive(2, 2, 256, 160))}
    with Writer(tmp_path / "in", version=8) as writer:
        conns = {ns: writer.add_connection(f"{ns}/image", bags.IMAGE, typestore=bags.TYPESTORE) for ns in frames}
        for i in range(2):
            for ns, drive in frames.items():
                t = 1_000_000_000 + i * 100_000_000
                msg = bags.image_message(drive[i].image, "rgb8", t, ns.strip("/"))
                writer.write(conns[ns], t, bags.serialize(msg, bags.IMAGE))
    with pytest.raises(bags.BagError, match=r"several camera topics \['/front/image', '/rear/image'\]"):
        replay_bag(tmp_path / "in", tmp_path / "x", params, ReplayOptions(progress=False))
    options = ReplayOptions(topics=("/front/image", "/rear/image"), models=("semantic",), progress=False)
    report = replay_bag(tmp_path / "in", tmp_path / "out", params, options)
    assert report.frames == 4
    outputs = read_bag(tmp_path / "out")
    for ns, drive in frames.items():
        maps = outputs[f"{ns}/semantic/class_map"]
        assert [m.header.frame_id for _, m in maps] == [ns.strip("/")] * 2
        for (_, msg), frame in zip(maps, drive):
            single = core.run([decode_image(bags.image_message(frame.image, "rgb8", 0, ""))])[0].semantic.class_map
            # A batch of two and a batch of one take the same arithmetic on the CPU.
            assert np.mean(pixels(msg) == single) > 0.999


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seg_perception.apps.cli", *args], capture_output=True, text=True, timeout=600
    )


def corrupt_mcap_chunk(bag: Path, index: int) -> None:
    """Overwrite the first record inside the ``index``-th chunk: readable up to that chunk."""
    path = next(bag.glob("*.mcap"))
    data = bytearray(path.read_bytes())
    pos, chunks = 8, []
    while pos < len(data) - 8 and data[pos] not in (0x02, 0x0F):  # footer / summary start
        (size,) = struct.unpack_from("<Q", data, pos + 1)
        if data[pos] == 0x06:
            chunks.append(pos)
        pos += 9 + size
    body = chunks[index] + 9
    (name_len,) = struct.unpack_from("<I", data, body + 28)  # after start/end time, size, crc
    first_record = body + 28 + 4 + name_len + 8
    data[first_record : first_record + 40] = b"\x05" + b"\xff" * 39
    path.write_bytes(data)


@pytest.mark.parametrize("batch", ["1", "4"])
def test_replay_keeps_frames_before_a_fault_in_the_middle_of_the_bag(tmp_path: Path, batch: str) -> None:
    in_bag = drive_bag(tmp_path / "in", frames=6, storage="mcap")
    corrupt_mcap_chunk(in_bag, 1)
    result = run_cli(
        "replay", str(in_bag), "--out", str(tmp_path / "out"), "--models", "semantic", "--no-progress", "--batch", batch
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("seg-perception: error")]
    assert len(errors) == 1 and "damaged or truncated" in errors[0]
    kept = read_bag(tmp_path / "out")["/camera/semantic/class_map"]
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert 0 < len(kept) == report["frames"] < 6 and report["stopped"].startswith("bag fault")


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("truncated", [], r"cannot open bag .*malformed"),
        (
            "ok",
            ["--topic", "/camera/missing"],
            r"topic /camera/missing is not in the bag; image topics: \[.*'/camera/image_raw'\]",
        ),
        ("ok", ["--topic", "/camera/gt/condition"], r"topic /camera/gt/condition is std_msgs/msg/String; expected"),
        ("none", [], r"bag .*/nothing does not exist"),
        ("ok", ["--models", "semantic,lidar"], r"models must be a non-empty subset"),
    ],
)
def test_replay_refuses_bad_input_with_one_line(tmp_path: Path, setup: str, args: list[str], message: str) -> None:
    import re

    bag = tmp_path / "nothing"
    if setup != "none":
        bag = drive_bag(tmp_path / "in", frames=2)
    if setup == "truncated":
        db = next(bag.glob("*.db3"))
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    result = run_cli("replay", str(bag), "--out", str(tmp_path / "out"), "--no-progress", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written when nothing could be read


def test_replay_counts_and_skips_bad_frames(tmp_path: Path, params: dict) -> None:
    drive = list(generate_drive(3, 3, 160, 96))
    with Writer(tmp_path / "in", version=8) as writer:
        conn = writer.add_connection("/cam/image", bags.IMAGE, typestore=bags.TYPESTORE)
        for i, frame in enumerate(drive):
            msg = bags.image_message(frame.image, "rgb8", i, "cam")
            if i == 1:
                msg.data = msg.data[: len(msg.data) // 2]  # truncated payload
            writer.write(conn, i, bags.serialize(msg, bags.IMAGE))
        odd = bags.image_message(drive[0].image, "rgb8", 9, "cam")
        odd.encoding = "32FC7"
        writer.write(conn, 9, bags.serialize(odd, bags.IMAGE))
    report = replay_bag(tmp_path / "in", tmp_path / "out", params, ReplayOptions(models=("semantic",), progress=False))
    assert (report.frames, report.bad_frames) == (2, 2)
    assert "message 2" in report.first_bad
    stamps = [m.header.stamp.nanosec for _, m in read_bag(tmp_path / "out")["/cam/semantic/class_map"]]
    assert stamps == [0, 2]


def test_interrupted_replay_leaves_a_readable_bag_and_report(tmp_path: Path) -> None:
    import os
    import re

    in_bag = drive_bag(tmp_path / "in", frames=40)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seg_perception.apps.cli",
            "replay",
            str(in_bag),
            "--out",
            str(tmp_path / "out"),
            "--models",
            "semantic",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    seen = bytearray()

    def read() -> None:
        while chunk := os.read(proc.stderr.fileno(), 4096):
            seen.extend(chunk)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 300
    while not re.search(rb"\b([2-9]|[1-3][0-9])/40", seen) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130, seen.decode(errors="replace")
    kept = read_bag(tmp_path / "out")["/camera/semantic/class_map"]
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["stopped"] == "interrupted" and 2 <= len(kept) == report["frames"] < 40


def test_replay_cityscapes_results_are_taken_by_the_official_scripts_as_is(tmp_path: Path) -> None:
    """A generated drive written as a Cityscapes layout and a bag; `replay --format cityscapes`
    writes result files that the official scripts, run unmodified on that layout, score exactly
    as the replay report scores the bag."""
    import contextlib
    import io

    from seg_perception.synthetic.writers import write_cityscapes_and_drive_bag
    from test.metrics.test_official_results import create_panoptic, run_official, same

    dataset = tmp_path / "cityscapes"
    drive = generate_drive(5, 3, 320, 192, fps=10.0)
    _, in_bag = write_cityscapes_and_drive_bag(dataset, tmp_path / "in", drive, fps=10.0)
    with contextlib.redirect_stdout(io.StringIO()):
        create_panoptic.convert2panoptic(str(dataset / "gtFine"), str(dataset / "gtFine"), setNames=["val"])
    out = tmp_path / "out"
    overrides = [f"-p={k}={v}" for k, v in OVERRIDES.items()]
    assert main(["replay", str(in_bag), "--out", str(out), "--format", "cityscapes", "--no-progress", *overrides]) == 0
    metrics = json.loads((tmp_path / "out.report.json").read_text())["metrics"]
    results = tmp_path / "out.cityscapes"
    assert sorted(p.name for p in (results / "semantic").iterdir()) == [
        f"synth_000000_00000{i}_pred_labelIds.png" for i in range(3)
    ]
    px = run_official("evalPixelLevelSemanticLabeling", dataset, results / "semantic", tmp_path / "w_px")
    assert same(px["averageScoreClasses"], metrics["semantic"]["mIoU"])
    assert same(px["averageScoreInstClasses"], metrics["semantic"]["miIoU"])
    inst = run_official("evalInstanceLevelSemanticLabeling", dataset, results / "instance", tmp_path / "w_in")
    assert same(inst["averages"]["allAp"], metrics["instance"]["cityscapes"]["AP"])
    assert same(inst["averages"]["allAp50%"], metrics["instance"]["cityscapes"]["AP50"])
    pq = run_official("evalPanopticSemanticLabeling", dataset, results / "panoptic", tmp_path / "w_pq")
    for k in ("pq", "sq", "rq"):
        assert same(pq["All"][k], metrics["panoptic"]["All"][k]), k
    assert (
        metrics["semantic"]["mIoU"] > 0.15
        and sum(len(p.read_text().splitlines()) for p in (results / "instance").glob("*.txt")) > 0
    )


def test_replay_refuses_a_result_city_the_stems_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--city must be a name without '_'"):
        ReplayOptions(results=str(tmp_path / "r"), city="my_city")
    assert main(["replay", "in", "--out", str(tmp_path / "o"), "--results", str(tmp_path / "r")]) == 2


def raw_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with Reader(path) as reader:
        return [(conn.topic, t, bytes(raw)) for conn, t, raw in reader.messages()]


def test_replay_class_maps_do_not_depend_on_batches_or_model_copies(tmp_path: Path, params: dict[str, Any]) -> None:
    """The serial loop (batch 1), the default (batches of 2 through two single-threaded copies
    of the model) and batches of 3 (the last one short): the same bytes in the output bag,
    message for message, and the same metrics."""
    in_bag = drive_bag(tmp_path / "in", frames=7, storage="sqlite3")  # sqlite3: the writer's own thread
    runs: dict[str, tuple[list[tuple[str, int, bytes]], str]] = {}
    for name, batch in (("serial", 1), ("default", 0), ("batches", 3)):
        options = ReplayOptions(models=("semantic",), overlays=True, batch=batch, progress=False)
        report = replay_bag(in_bag, tmp_path / name, {**params, "cpu_threads": 2}, options)
        assert (report.frames, report.stopped) == (7, "completed") and len(report.latencies_ms) == 7
        runs[name] = (raw_messages(tmp_path / name), json.dumps({**(report.metrics or {}), "pred": ""}))
    assert len(runs["serial"][0]) == 7 * 2  # class maps and overlays
    assert runs["default"] == runs["serial"]
    assert runs["batches"] == runs["serial"]


@pytest.mark.parametrize(
    ("models", "confidence", "batch", "plan"),
    [
        (("semantic",), False, 0, (2, 2, True)),  # class maps only: batches of 2, a model copy per core
        (("semantic",), True, 0, (1, 0, False)),  # confidence maps: the serial loop, in one thread
        (("semantic", "instance"), False, 0, (1, 0, False)),  # detection scores: likewise
        (("semantic",), False, 1, (1, 0, False)),  # asked for
        (("semantic", "instance"), True, 4, (4, 2, True)),  # asked for
    ],
)
def test_replay_runs_the_models_as_the_serial_loop_unless_class_maps_are_all_they_write(
    params: dict[str, Any], models: tuple[str, ...], confidence: bool, batch: int, plan: tuple[int, int, bool]
) -> None:
    from seg_perception.apps.replay_models import model_plan

    assert model_plan({**params, "cpu_threads": 2}, models, confidence, batch) == plan


def test_replay_error_while_writing_closes_the_bag_with_the_frames_before(
    tmp_path: Path, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the writer thread is raised by replay_bag; the bag is closed properly."""
    from seg_perception.apps import replay

    in_bag = drive_bag(tmp_path / "in", frames=6)
    write_outputs = replay._write_outputs
    written: list[int] = []

    def fail_on_the_fourth(*args: object) -> None:
        if len(written) == 3:
            raise OSError("disk full")
        write_outputs(*args)  # type: ignore[arg-type]
        written.append(1)

    monkeypatch.setattr(replay, "_write_outputs", fail_on_the_fourth)
    with pytest.raises(OSError, match="disk full"):
        replay_bag(in_bag, tmp_path / "out", {**params, "cpu_threads": 2}, ReplayOptions(models=("semantic",)))
    assert len(read_bag(tmp_path / "out")["/camera/semantic/class_map"]) == 3


def test_replay_stops_at_the_limit_with_every_frame_before_it_written(tmp_path: Path, params: dict[str, Any]) -> None:
    in_bag = drive_bag(tmp_path / "in", frames=6)
    options = ReplayOptions(models=("semantic",), limit=4, batch=3, progress=False)
    report = replay_bag(in_bag, tmp_path / "out", {**params, "cpu_threads": 2}, options)
    assert (report.frames, report.stopped) == (4, "limit")
    assert len(read_bag(tmp_path / "out")["/camera/semantic/class_map"]) == 4


def test_read_ahead_gives_the_items_then_the_error_that_ended_them() -> None:
    from seg_perception.apps.replay_pipeline import ReadAhead

    def source() -> Iterator[int]:
        yield from range(5)
        raise BagError("damaged")

    got: list[int] = []
    ahead = ReadAhead(source(), depth=2)
    with pytest.raises(BagError, match="damaged"):
        got.extend(ahead)
    ahead.close()
    assert got == [0, 1, 2, 3, 4]


def test_ordered_worker_runs_in_order_in_its_own_thread_and_raises_the_first_error() -> None:
    from seg_perception.apps.replay_pipeline import OrderedWorker

    seen: list[tuple[str, int]] = []

    def record(name: str) -> None:
        seen.append((name, threading.get_ident()))

    worker = OrderedWorker(depth=2, setup=functools.partial(record, "setup"))
    for i in range(10):
        worker.submit(functools.partial(record, f"job {i}"))
    assert worker.call(lambda: 42) == 42
    worker.submit(lambda: 1 / 0)
    worker.submit(functools.partial(record, "dropped"))
    with pytest.raises(ZeroDivisionError):
        worker.close()
    assert [name for name, _ in seen] == ["setup", *(f"job {i}" for i in range(10))]
    assert len({ident for _, ident in seen}) == 1 and seen[0][1] != threading.get_ident()
