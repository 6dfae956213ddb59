"""Offline replay (``seg-perception replay``): every camera frame of a rosbag2 (sqlite3 or mcap)
through the same core as the nodes, the outputs written to a new bag stamped like their
inputs, and a report (JSON + Markdown) with per-frame latency and, when the bag carries
ground truth (``<camera>/gt/...``, as generated drives do), the evaluation metrics.

Deterministic: frames are processed in bag order, none is skipped; with several cameras one
frame of each goes through the models as one batch, as in the nodes (``batch``: that many).
Pipelined (replay_pipeline.py, replay_models.py), the outputs and metrics those of a serial
loop. Faults keep what was done: the output bag is closed properly on a read fault, a bad
frame (counted and skipped) or Ctrl-C, and the report says why it stopped.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Writer

from seg_perception.apps import replay_models
from seg_perception.apps.output_messages import (
    CLASS_MAP,
    CONFIDENCE,
    DETECTIONS_TOPIC,
    INSTANCE_MAP,
    PANOPTIC_MAP,
    output_messages,
)
from seg_perception.apps.replay_models import Frame, ModelPool
from seg_perception.apps.replay_pipeline import OrderedWorker, ReadAhead
from seg_perception.apps.replay_report import ReplayReport, report_paths, write_report
from seg_perception.errors import BagError, ConfigError, ImageError
from seg_perception.io import bags
from seg_perception.io.bags import DETECTIONS, IMAGE, STORAGES, TYPESTORE
from seg_perception.io.image import DecodedImage
from seg_perception.metrics.bags import add_ground_truth, ground_truth_connections
from seg_perception.metrics.cityscapes.results import ResultsWriter
from seg_perception.metrics.stream import FrameJoiner, StreamEvaluator
from seg_perception.pipeline.perception import MODELS, FrameResult, PerceptionCore, parse_models

log = logging.getLogger(__name__)

OVERLAYS = {"semantic": "semantic/overlay", "instance": "instance/overlay", "panoptic": "panoptic/overlay"}


@dataclass(frozen=True)
class ReplayOptions:
    topics: tuple[str, ...] = ()  # camera topics; empty: the bag's one camera topic
    models: tuple[str, ...] = MODELS
    overlays: bool = False
    confidence: bool = False
    copy_input: bool = False  # also write the camera frames into the output bag
    storage: str = ""  # "" = the input bag's storage
    overlay_alpha: float = 0.5
    limit: int = 0  # stop after this many frames (0: all)
    batch: int = 0  # frames of each camera per batch; 0: automatic (see replay_models.model_plan)
    progress: bool = True
    # also write the predictions as official Cityscapes result files here ("": don't), stems
    # <city>_<camera index>_<frame index>: a generated drive's frames meet their ground truth
    results: str = ""
    city: str = "synth"

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 0:
            raise ConfigError(f"--batch must be a number of frames (0: automatic), got {self.batch!r}")
        if self.results and (not self.city or any(c in self.city for c in "_ /")):
            raise ConfigError(
                f"--city must be a name without '_', '/' or spaces (the <city> of <city>_<seq>_<frame>), "
                f"got {self.city!r}"
            )


@dataclass
class _Camera:
    """One replayed camera: its output connections in the writer."""

    namespace: str
    outputs: dict[str, Any]
    seq: int = 0  # the camera's place in the replayed cameras (the <seq> of result stems)
    read: int = 0  # its messages read so far, bad ones included (the <frame> of result stems)


def replay_bag(
    in_bag: str | Path,
    out_bag: str | Path,
    params: Mapping[str, Any],
    options: ReplayOptions = ReplayOptions(),
    report_path: str | Path | None = None,
) -> ReplayReport:
    """Replay ``in_bag`` into ``out_bag`` (must not exist); write the report beside it
    (``<out_bag>.report.json`` / ``.md``, or ``report_path``). Returns the report; a fault
    after the first frame is recorded in it rather than raised, so nothing is lost."""
    out_bag = Path(out_bag)
    if out_bag.exists():
        raise BagError(f"output bag {out_bag} already exists; remove it or choose another --out")
    reader = bags.open_bag(in_bag)
    try:
        cameras = bags.camera_connections(reader, options.topics)
        plan = replay_models.model_plan(params, parse_models(options.models), options.confidence, options.batch)
        options = replace(options, batch=plan.batch)
        with replay_models.single_threaded_models(plan.copies > 0):
            core = PerceptionCore.from_params(params, options.models)
            report = ReplayReport(str(in_bag), str(out_bag), [c.topic for c in cameras], list(core.models))
            report.notes += _untrained_notes(params, core.models)
            report.notes += reader.truncated_files()  # storage files read only up to a cut-off end
            storage = options.storage or _storage_of(reader)
            if storage not in STORAGES:
                raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
            writer = Writer(out_bag, version=8, storage_plugin=STORAGES[storage])
            window = replay_models.frames_in_flight(plan.copies, options.batch * len(cameras))
            # The writer lives in the thread that writes the outputs: opened, used and closed
            # there (rosbags' sqlite3 connection belongs to the thread that made it). close(),
            # not the context manager: that aborts on an exception and leaves no metadata.
            # Its jobs: a batch's outputs, up to 3 ground-truth messages a frame.
            behind = OrderedWorker(4 * window + 16, writer.open, writer.close, threaded=plan.background)
            pool = None
            try:
                pool = ModelPool.of(core, params, options.models, plan.copies, options.confidence)
                _run(reader, writer, behind, pool, window, cameras, core, options, report)
            except KeyboardInterrupt:
                report.stopped = "interrupted"
            finally:
                if pool is not None:
                    pool.close()
                behind.close()  # what is queued is written, then the bag is closed
    finally:
        reader.close()
    write_report(report, report_paths(out_bag, report_path))
    if report.stopped == "interrupted":
        raise KeyboardInterrupt
    return report


def _run(
    reader: Any,
    writer: Writer,
    behind: OrderedWorker,
    pool: ModelPool,
    window: int,
    cameras: list[Connection],
    core: PerceptionCore,
    options: ReplayOptions,
    report: ReplayReport,
) -> None:
    """The frame loop: frames decoded and batched here, through ``pool``; everything that uses
    the writer, the evaluator or the result files in ``behind``'s thread, in bag order. Every
    frame that went to the models is written and evaluated before this returns."""
    started = time.monotonic()
    outs = {
        c.id: _Camera(bags.camera_namespace(c.topic), behind.call(_add_outputs, writer, c, core, options), seq)
        for seq, c in enumerate(cameras)
    }
    result_files = ResultsWriter(options.results, core.labels) if options.results else None
    gt_conns = ground_truth_connections(reader.connections, {cam.namespace for cam in outs.values()})
    evaluator = StreamEvaluator(core.labels) if gt_conns else None
    expected = _expected_kinds(core)
    joiner = (
        FrameJoiner(evaluator, expected, {ns for (ns, kind) in gt_conns.values() if kind == "condition"})
        if evaluator
        else None
    )
    total = sum(c.msgcount for c in cameras)
    if options.limit:
        total = min(total, options.limit)
    progress = _progress(total, options.progress)

    def write_frame(frame: Frame, result: FrameResult) -> None:  # in the writer thread
        cam = outs[frame.conn.id]
        _write_outputs(writer, cam, frame.logtime, frame.msg.header, frame.image, result, core, options)
        if joiner is not None:
            _add_predictions(joiner, cam.namespace, bags.stamp_ns(frame.msg.header), result)
        if result_files is not None:
            result_files.write_result(f"{options.city}_{cam.seq:06d}_{frame.number:06d}", result)

    models = replay_models.ModelsThenWriter(pool, write_frame, report, progress, behind, window)
    batch: list[Frame] = []
    gt_connections = [c for c in reader.connections if c.id in gt_conns]
    messages = ReadAhead(bags.read_messages(reader, [*cameras, *gt_connections]), threaded=behind.threaded)
    try:
        try:
            for conn, logtime, raw in messages:
                if conn.id in gt_conns:
                    if joiner is not None:
                        models.behind(add_ground_truth, joiner, gt_conns[conn.id], conn.msgtype, logtime, raw)
                    continue
                if replay_models.batch_full(batch, conn.id, len(cameras), options.batch):
                    models.run(batch)
                    batch = []
                if options.limit and report.frames + report.bad_frames >= options.limit:
                    report.stopped = "limit"
                    break
                cam = outs[conn.id]
                cam.read += 1
                frame = _decode(conn, raw, report)
                if frame is not None:
                    batch.append(Frame(conn, logtime, *frame, cam.read - 1))
                    report.frames += 1  # as it joins a batch: for --limit and the bad frames' numbers
                else:
                    models.behind(progress.update, 1)
                if options.copy_input:
                    models.behind(writer.write, cam.outputs["input"], logtime, raw)
            models.run(batch)
        except BagError as err:
            models.run(batch)  # keep what was read
            report.stopped = f"bag fault: {err}"
            log.error("%s; %d frames processed before the fault are in %s", err, report.frames, report.output_bag)
        finally:
            messages.close()
            models.close()  # every frame that left the models is written and evaluated
    finally:
        progress.close()
        if result_files is not None:
            result_files.close()
        report.wall_s = time.monotonic() - started
        if joiner is not None and evaluator is not None:  # the joiner exists exactly with ground truth
            report.unpaired_frames = joiner.finish()
            if joiner.matched:
                report.metrics = {
                    **evaluator.result(),
                    "pred": report.output_bag,
                    "gt": report.input_bag,
                }


def _decode(conn: Any, raw: bytes, report: ReplayReport) -> tuple[Any, DecodedImage] | None:
    """(message, decoded frame), or None for a bad frame (counted; the first one is named)."""
    try:
        msg, image = bags.decode_frame(raw, conn.msgtype)
    except ImageError as err:
        report.bad_frames += 1
        where = f"{conn.topic} message {report.frames + report.bad_frames}"
        if not report.first_bad:
            report.first_bad = f"{where}: {err}"
        log.warning("skipping bad frame %s: %s", where, err)
        return None
    return msg, image


def _add_outputs(writer: Writer, conn: Any, core: PerceptionCore, options: ReplayOptions) -> dict[str, Any]:
    ns = bags.camera_namespace(conn.topic)
    topics: dict[str, tuple[str, str]] = {}
    if core.semantic is not None:
        topics[CLASS_MAP] = (CLASS_MAP, IMAGE)
        if options.confidence:
            topics[CONFIDENCE] = (CONFIDENCE, IMAGE)
    if core.instance is not None:
        topics[INSTANCE_MAP] = (INSTANCE_MAP, IMAGE)
        topics[DETECTIONS_TOPIC] = (DETECTIONS_TOPIC, DETECTIONS)
    if core.semantic is not None and core.instance is not None:
        topics[PANOPTIC_MAP] = (PANOPTIC_MAP, IMAGE)
    if options.overlays:
        for model, topic in OVERLAYS.items():
            if model in core.models or (model == "panoptic" and PANOPTIC_MAP in topics):
                topics[topic] = (topic, IMAGE)
    out = {
        key: writer.add_connection(f"{ns}/{rel}", msgtype, typestore=TYPESTORE)
        for key, (rel, msgtype) in topics.items()
    }
    if options.copy_input:
        out["input"] = writer.add_connection(conn.topic, conn.msgtype, typestore=TYPESTORE)
    return out


def _write_outputs(
    writer: Writer,
    cam: _Camera,
    logtime: int,
    header: Any,
    image: DecodedImage,
    result: FrameResult,
    core: PerceptionCore,
    options: ReplayOptions,
) -> None:
    # The same messages fleet --write-bags writes (apps/output_messages.py).
    for key, _msgtype, data in output_messages(header, result):
        if key in cam.outputs:  # confidence only where asked for
            writer.write(cam.outputs[key], logtime, data)

    def put(key: str, msg: Any) -> None:
        writer.write(cam.outputs[key], logtime, bags.serialize(msg, IMAGE))

    def img(pixels: np.ndarray, encoding: str) -> Any:
        return bags.image_message(pixels, encoding, 0, "", msg_header=header)

    if options.overlays:
        for model, overlay in core.overlays(image, result, options.overlay_alpha).items():
            put(OVERLAYS[model], img(overlay, "rgb8"))


def _expected_kinds(core: PerceptionCore) -> tuple[str, ...]:
    kinds = []
    if core.semantic is not None:
        kinds.append("class_map")
    if core.instance is not None:
        kinds += ["instance_map", "scores"]
    if core.semantic is not None and core.instance is not None:
        kinds.append("panoptic")
    return tuple(kinds)


def _add_predictions(joiner: FrameJoiner, namespace: str, stamp: int, result: FrameResult) -> None:
    if result.semantic is not None:
        joiner.add(namespace, stamp, "class_map", result.semantic.class_map)
    if result.instance is not None:
        joiner.add(namespace, stamp, "instance_map", result.instance.instance_map)
        joiner.add(namespace, stamp, "scores", {r.value: r.score for r in result.instance.instances})
    if result.panoptic is not None:
        joiner.add(namespace, stamp, "panoptic", result.panoptic)


def _storage_of(reader: Any) -> str:
    """The input bag's storage; MCAP (rosbag2's default since Iron) where it is unknown."""
    ident = bags.storage_of(reader)
    return ident if ident in STORAGES else "mcap"


def _untrained_notes(params: Mapping[str, Any], models: Sequence[str]) -> list[str]:
    return [
        f"{m} model has no checkpoint: UNTRAINED weights, its outputs and metrics are meaningless"
        for m in models
        if not params.get(f"{m}.checkpoint")
    ]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="replay", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
