"""Scoring (CPU): each predicted frame with ground truth against it, per model set; in the
model workers where they run on the CPU, else a stage of its own (models.py says why).

A frame's contribution to the metrics leaves as a one-frame :class:`StreamEvaluator`; the
driver merges them in drive and frame order, so the fleet's metrics equal one evaluator fed
every frame in that order (merging appends records, it does not average). Beside it, the
per-frame numbers of the Parquet table (:class:`FrameStats`) and, for ``compare``, the
side-by-side picture of a frame the candidate got worse on.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.apps.fleet.records import Outputs, Prediction, pack, unpack
from seg_perception.io import bags
from seg_perception.io.image import decode_image
from seg_perception.labels import LabelSet
from seg_perception.metrics.confusion import ConfusionMatrix, iou_per_class, pixel_accuracy
from seg_perception.metrics.stream import StreamEvaluator
from seg_perception.pipeline.overlays import colorize


@dataclass(frozen=True)
class FrameStats:
    """One frame through one model set. Per train id: ``tp``, ``fp``, ``fn`` pixels (empty
    without semantic model or ground truth); ``miou`` over the classes in ground truth or
    prediction (NaN without them); ``instances`` predicted."""

    tp: tuple[int, ...] = ()
    fp: tuple[int, ...] = ()
    fn: tuple[int, ...] = ()
    miou: float = float("nan")
    pixel_accuracy: float = float("nan")
    instances: int = 0


@dataclass(frozen=True)
class ScoreOptions:
    labels: LabelSet
    keep_predictions: bool = False  # --write-bags: the output messages go on to the driver
    panel_drop: float = -1.0  # compare: a side-by-side picture where the candidate lost this much mIoU (> 0)


def score_batch(batch: dict[str, npt.NDArray[Any]], options: ScoreOptions) -> dict[str, npt.NDArray[Any]]:
    """Ray Data ``map_batches`` function, the score stage: :func:`scored` on the model
    stage's packed predictions (``pred``)."""
    return scored(batch, [unpack(p) if p else None for p in batch["pred"]], options)


def scored(
    batch: dict[str, npt.NDArray[Any]], predictions: Sequence[Prediction | None], options: ScoreOptions
) -> dict[str, npt.NDArray[Any]]:
    """``batch`` with each frame's ``predictions`` scored against its ground truth: adds
    ``evals`` (pickled one-frame evaluators, one per model set; ``b""`` without ground truth),
    ``stats`` (pickled FrameStats per set) and ``panel`` (PNG, compare only: when baseline mIoU
    - candidate mIoU >= ``panel_drop`` > 0); drops the ground-truth images; ``pred`` holds
    the output messages (packed :class:`Prediction` without outputs) with ``keep_predictions``,
    else nothing."""
    n = len(batch["kind"])
    evals, stats, panels, preds = (np.empty(n, object) for _ in range(4))
    for i, prediction in enumerate(predictions):
        evals[i] = stats[i] = panels[i] = preds[i] = b""
        if prediction is None:
            continue
        if options.keep_predictions:
            preds[i] = pack(replace(prediction, outputs=(), thumbnail=None))
        gt = _ground_truth(batch["gt_label_ids"][i], batch["gt_instance_ids"][i])
        if gt is None:
            stats[i] = pickle.dumps([frame_stats_of(r, None) for r in prediction.outputs])
            continue
        condition = str(batch["condition"][i])
        evaluators = [frame_evaluator(r, *gt, condition, options.labels) for r in prediction.outputs]
        frame_stats = [frame_stats_of(r, conf) for r, (_, conf) in zip(prediction.outputs, evaluators)]
        stats[i] = pickle.dumps(frame_stats)
        evals[i] = pickle.dumps([e for e, _ in evaluators], protocol=pickle.HIGHEST_PROTOCOL)
        if 0 < options.panel_drop <= frame_stats[0].miou - frame_stats[-1].miou:
            panels[i] = side_by_side(prediction, gt[0], options.labels)
    empty = np.array([b""] * n, object)
    out = dict(batch)
    out.update(evals=evals, stats=stats, panel=panels, pred=preds, gt_label_ids=empty, gt_instance_ids=empty)
    return out


def _ground_truth(label_packed: bytes, instance_packed: bytes) -> tuple[npt.NDArray[Any], npt.NDArray[Any]] | None:
    """The frame's label-id and instance-id images, from the read stage's packed CDR."""
    if not label_packed or not instance_packed:
        return None
    label = decode_image(bags.deserialize(unpack(label_packed), bags.IMAGE)).pixels
    instance = decode_image(bags.deserialize(unpack(instance_packed), bags.IMAGE)).pixels
    return np.array(label), np.array(instance)


def frame_evaluator(
    result: Outputs,
    gt_label_ids: npt.NDArray[Any],
    gt_instance_ids: npt.NDArray[Any],
    condition: str,
    labels: LabelSet,
) -> tuple[StreamEvaluator, ConfusionMatrix | None]:
    """A one-frame evaluator fed what replay feeds it for this frame (see metrics/stream.py),
    and the frame's train-id confusion counts (None without a class map)."""
    evaluator = StreamEvaluator(labels)
    conf = evaluator.add(
        gt_label_ids,
        gt_instance_ids,
        condition,
        class_map=result.class_map,
        instance_map=result.instance_map,
        scores=result.scores,
        panoptic=result.panoptic,
    )
    return evaluator, conf


def frame_stats_of(result: Outputs, conf: ConfusionMatrix | None) -> FrameStats:
    """The frame's row of the table; ``conf``: its train-id confusion counts, None without
    ground truth or class map."""
    instances = len(result.scores) if result.scores is not None else 0
    if conf is None:
        return FrameStats(instances=instances)
    tp = np.diag(conf)
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    seen = (tp + fp + fn) > 0
    iou = iou_per_class(conf)
    return FrameStats(
        tuple(int(v) for v in tp),
        tuple(int(v) for v in fp),
        tuple(int(v) for v in fn),
        float(np.mean(iou[seen])) if seen.any() else float("nan"),
        float(pixel_accuracy(conf)),
        instances,
    )


def side_by_side(prediction: Prediction, gt_label_ids: npt.NDArray[Any], labels: LabelSet) -> bytes:
    """camera | ground truth | baseline | candidate, each at the thumbnail's size, as PNG."""
    palette = labels.palette()
    to_train = labels.label_to_train_id()
    camera = prediction.thumbnail
    assert camera is not None  # compare's workers keep thumbnails
    size = (camera.shape[1], camera.shape[0])
    maps = [to_train[gt_label_ids], *(r.class_map for r in prediction.outputs if r.class_map is not None)]
    tiles = [camera, *(cv2.resize(colorize(m, palette), size, interpolation=cv2.INTER_NEAREST) for m in maps)]
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    return png.tobytes() if ok else b""


def merged(evaluators: Sequence[StreamEvaluator], labels: LabelSet) -> StreamEvaluator:
    """One evaluator holding every given one's frames, in order."""
    total = StreamEvaluator(labels)
    for evaluator in evaluators:
        total.merge(evaluator)
    return total
