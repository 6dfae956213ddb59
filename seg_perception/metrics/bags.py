"""Metrics from bags: ground truth topics of a generated drive (``<camera>/gt/label_ids``,
``gt/instance_ids``, ``gt/condition``) against prediction topics (``<camera>/semantic/class_map``,
``instance/instance_map`` with ``instance/detections`` for scores, ``panoptic/panoptic_map``),
paired by camera namespace and header stamp. Used by replay, the demo and ``seg-perception eval``
when its paths are bags."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.errors import BagError
from seg_perception.io import bags
from seg_perception.io.image import decode_image
from seg_perception.labels import load_label_set
from seg_perception.metrics.stream import FrameJoiner, StreamEvaluator

GT_TOPICS = {"label_ids": bags.GT_LABEL_IDS, "instance_ids": bags.GT_INSTANCE_IDS, "condition": bags.GT_CONDITION}
PRED_TOPICS = {
    "class_map": "semantic/class_map",
    "instance_map": "instance/instance_map",
    "scores": "instance/detections",
    "panoptic": "panoptic/panoptic_map",
}


def ground_truth_connections(
    connections: Iterable[Any], namespaces: Iterable[str] | None = None
) -> dict[int, tuple[str, str]]:
    """{connection id: (camera namespace, gt kind)} of the ground-truth topics (of the given
    camera namespaces, or of every camera that has them); a camera needs both images."""
    found: dict[int, tuple[str, str]] = {}
    wanted = None if namespaces is None else set(namespaces)
    for c in connections:
        for kind, rel in GT_TOPICS.items():
            if c.topic.endswith("/" + rel):
                ns = c.topic[: -len(rel) - 1]
                if wanted is None or ns in wanted:
                    found[c.id] = (ns, kind)
    kinds: dict[str, set[str]] = {}
    for ns, kind in found.values():
        kinds.setdefault(ns, set()).add(kind)
    return {cid: (ns, kind) for cid, (ns, kind) in found.items() if {"label_ids", "instance_ids"} <= kinds[ns]}


def add_ground_truth(joiner: FrameJoiner, where: tuple[str, str], msgtype: str, logtime: int, raw: bytes) -> None:
    namespace, kind = where
    msg = bags.deserialize(raw, msgtype)
    if msgtype == bags.STRING:
        # A String has no header: it is logged at its frame's stamp (see synthetic.writers.write_drive_bag).
        joiner.add(namespace, logtime, kind, msg.data)
        return
    joiner.add(namespace, bags.stamp_ns(msg.header), kind, np.array(decode_image(msg).pixels))


def _prediction_connections(connections: Iterable[Any]) -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    for c in connections:
        for kind, rel in PRED_TOPICS.items():
            if c.topic.endswith("/" + rel) or c.topic == rel:
                found[c.id] = (c.topic[: -len(rel) - 1] if c.topic != rel else "", kind)
    return found


def evaluate_bags(pred_bag: str | Path, gt_bag: str | Path, labels: str = "cityscapes") -> dict[str, Any]:
    """Metrics of the prediction topics of ``pred_bag`` against the ground truth of
    ``gt_bag`` (which may be the same bag). Instance AP needs instance/detections (scores)."""
    pred_reader, gt_reader = bags.open_bag(pred_bag), bags.open_bag(gt_bag)
    try:
        preds = _prediction_connections(pred_reader.connections)
        gts = ground_truth_connections(gt_reader.connections)
        if not gts:
            raise BagError(
                f"bag {gt_bag} has no ground-truth topics (<camera>/{bags.GT_LABEL_IDS} and "
                f"<camera>/{bags.GT_INSTANCE_IDS})"
            )
        pred_ns = {ns for ns, _ in preds.values()}
        preds = {cid: v for cid, v in preds.items() if v[0] in {ns for ns, _ in gts.values()}}
        if not preds:
            raise BagError(
                f"bag {pred_bag} has no prediction topics ({', '.join(PRED_TOPICS.values())}) for the "
                f"cameras with ground truth {sorted({ns for ns, _ in gts.values()})} "
                f"(prediction namespaces: {sorted(pred_ns) or 'none'})"
            )
        kinds = {kind for _, kind in preds.values()}
        if "instance_map" not in kinds or "scores" not in kinds:  # AP needs both map and scores
            kinds -= {"instance_map", "scores"}
        evaluator = StreamEvaluator(load_label_set(labels))
        joiner = FrameJoiner(evaluator, tuple(kinds), {ns for ns, kind in gts.values() if kind == "condition"})
        streams = [
            (
                (t, 0, c, raw)
                for c, t, raw in bags.read_messages(gt_reader, [c for c in gt_reader.connections if c.id in gts])
            ),
            (
                (t, 1, c, raw)
                for c, t, raw in bags.read_messages(pred_reader, [c for c in pred_reader.connections if c.id in preds])
            ),
        ]
        for logtime, source, conn, raw in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            if source == 0:
                add_ground_truth(joiner, gts[conn.id], conn.msgtype, logtime, raw)
            else:
                _add_prediction(joiner, preds[conn.id], conn.msgtype, raw)
        unpaired = joiner.finish()
    finally:
        pred_reader.close()
        gt_reader.close()
    if not joiner.matched:
        raise BagError(f"no prediction in {pred_bag} has a header stamp of a ground-truth frame in {gt_bag}")
    return {**evaluator.result(), "pred": str(pred_bag), "gt": str(gt_bag), "unpaired_frames": unpaired}


def _add_prediction(joiner: FrameJoiner, where: tuple[str, str], msgtype: str, raw: bytes) -> None:
    namespace, kind = where
    msg = bags.deserialize(raw, msgtype)
    value: Mapping[int, float] | np.ndarray
    value = bags.detection_scores(msg) if kind == "scores" else np.array(decode_image(msg).pixels)
    joiner.add(namespace, bags.stamp_ns(msg.header), kind, value)


def is_bag(path: str | Path) -> bool:
    """A rosbag2 folder (has metadata.yaml) rather than a Cityscapes-layout folder."""
    return (Path(path) / "metadata.yaml").is_file()
