"""Metrics of frames as they stream by (replay, the demo, bags): the same evaluators as
``seg-perception eval`` on files, fed arrays, plus mIoU per scene condition.

Nothing is kept per frame but what the official tools need at the end: confusion counts,
instance records, COCO RLEs. Evaluators pickle and :meth:`StreamEvaluator.merge` combines them,
so each recorded drive can be evaluated in a process of its own and the results joined after:
merged in the order of the frames, the result equals (==) that of one evaluator fed them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
from seg_perception.metrics.cityscapes.panoptic import PanopticEvaluator
from seg_perception.metrics.cityscapes.semantic import SemanticEvaluator
from seg_perception.metrics.coco import coco_ground_truth, coco_mask_ap, coco_predictions
from seg_perception.metrics.confusion import ConfusionMatrix, confusion_matrix, summarize

#: version of the pickled state; a state of another version is refused, not misread
STATE_VERSION = 1
_STEM_PREFIX = "frame_"


def frame_confusion(class_map_train_ids: np.ndarray, gt_label_ids: np.ndarray, labels: LabelSet) -> ConfusionMatrix:
    """One frame's (n, n) int64 train-id confusion matrix (rows = ground truth, n =
    ``labels.num_classes``), the one summed per condition: ground-truth pixels of labels
    without a train id are skipped; ValueError if the class map has an id >= n elsewhere."""
    return confusion_matrix(class_map_train_ids, labels.label_to_train_id()[gt_label_ids], labels.num_classes)


def _stem(frame: int) -> str:
    """COCO ``file_name`` of the 1-based ``frame``."""
    return f"{_STEM_PREFIX}{frame:06d}"


def _frame_of(stem: str) -> int:
    return int(stem.removeprefix(_STEM_PREFIX))


class StreamEvaluator:
    """``add`` one frame's ground truth (Cityscapes label ids and instanceIds) with whichever
    predictions exist; ``result`` gives the dict ``seg-perception eval`` gives, plus
    ``conditions`` {condition: {frames, mIoU, pixel_accuracy}} when frames are tagged."""

    def __init__(self, labels: LabelSet) -> None:
        self.labels = labels
        self._to_label = labels.train_to_label_id()
        self.frames = 0
        self._semantic: SemanticEvaluator | None = None
        self._instance: InstanceEvaluator | None = None
        self._panoptic: PanopticEvaluator | None = None
        self._coco_images: list[dict[str, Any]] = []
        self._coco_annotations: list[dict[str, Any]] = []
        self._coco_predictions: list[dict[str, Any]] = []
        self._coco_categories: list[dict[str, Any]] = []
        self._conditions: dict[str, np.ndarray] = {}
        self._label_to_train: np.ndarray | None = None  # (label ids, train ids) 0/1, made on first use
        self._condition_frames: dict[str, int] = {}

    def add(
        self,
        gt_label_ids: np.ndarray,
        gt_instance_ids: np.ndarray,
        condition: str = "",
        *,
        class_map: np.ndarray | None = None,
        instance_map: np.ndarray | None = None,
        scores: Mapping[int, float] | None = None,
        panoptic: np.ndarray | None = None,
    ) -> ConfusionMatrix | None:
        """``class_map`` holds train ids (as the nodes publish them); ``instance_map`` and
        ``panoptic`` the Cityscapes instanceIds layout; ``scores`` {instance value: score}.
        Returns the frame's :func:`frame_confusion` where there is a class map."""
        self.frames += 1
        conf = None
        if class_map is not None:
            if self._semantic is None:
                self._semantic = SemanticEvaluator(self.labels)
            label_conf = self._semantic.add(self._to_label[class_map], gt_label_ids, gt_instance_ids)
            conf = self._train_id_confusion(label_conf)
            if condition:
                self._conditions[condition] = self._conditions.get(condition, 0) + conf
                self._condition_frames[condition] = self._condition_frames.get(condition, 0) + 1
        if instance_map is not None and scores is not None:
            if self._instance is None:
                self._instance = InstanceEvaluator(self.labels)
            self._instance.add(gt_instance_ids, instance_map, scores)
            self._add_coco(gt_instance_ids, instance_map, scores)
        if panoptic is not None:
            if self._panoptic is None:
                self._panoptic = PanopticEvaluator(self.labels)
            self._panoptic.add(gt_instance_ids, panoptic)
        return conf

    def _train_id_confusion(self, label_conf: ConfusionMatrix) -> ConfusionMatrix:
        """:func:`frame_confusion` of the frame, from its label-id confusion counts: each
        label id's row and column summed into its train id's (labels without one dropped),
        exact integer sums instead of a second pass over the pixels."""
        if self._label_to_train is None:
            to_train = self.labels.label_to_train_id()[: label_conf.shape[0]]
            trained = np.flatnonzero(to_train < self.labels.num_classes)
            self._label_to_train = np.zeros((label_conf.shape[0], self.labels.num_classes), np.int64)
            self._label_to_train[trained, to_train[trained]] = 1
        conf: ConfusionMatrix = self._label_to_train.T @ label_conf @ self._label_to_train
        return conf

    def _add_coco(self, gt_instance_ids: np.ndarray, instance_map: np.ndarray, scores: Mapping[int, float]) -> None:
        """Encode this frame to COCO RLEs now and renumber into the running dataset."""
        stem = _stem(self.frames)
        gt = coco_ground_truth([(stem, gt_instance_ids)], self.labels)
        preds = coco_predictions(gt, [(stem, instance_map, dict(scores))], self.labels)
        image_id = len(self._coco_images) + 1
        self._coco_categories = gt["categories"]
        self._coco_images.append({**gt["images"][0], "id": image_id})
        for ann in gt["annotations"]:
            self._coco_annotations.append({**ann, "id": len(self._coco_annotations) + 1, "image_id": image_id})
        self._coco_predictions.extend({**p, "image_id": image_id} for p in preds)

    def merge(self, other: StreamEvaluator) -> None:
        """Append ``other``'s frames after this evaluator's, as if each had been ``add``ed here
        after our own; ``other`` is left as it is. Merged in the order of the frames, the
        result equals that of one evaluator fed them all. In another order the counts are the
        same but float sums (iIoU, SQ/PQ) can differ in the last bits and COCO AP where scores
        tie (pycocotools ranks tied detections by image id). ConfigError if the label sets differ."""
        if other.labels != self.labels:
            raise ConfigError(f"cannot merge evaluators of label sets {self.labels.name!r} and {other.labels.name!r}")
        if other._semantic is not None:
            if self._semantic is None:
                self._semantic = SemanticEvaluator(self.labels)
            self._semantic.merge(other._semantic)
        if other._instance is not None:
            if self._instance is None:
                self._instance = InstanceEvaluator(self.labels)
            self._instance.merge(other._instance)
        if other._panoptic is not None:
            if self._panoptic is None:
                self._panoptic = PanopticEvaluator(self.labels)
            self._panoptic.merge(other._panoptic)
        self._merge_coco(other)
        for cond, conf in list(other._conditions.items()):
            self._conditions[cond] = self._conditions.get(cond, 0) + conf
            self._condition_frames[cond] = self._condition_frames.get(cond, 0) + other._condition_frames[cond]
        self.frames += other.frames  # last: _merge_coco numbers other's frames after ours

    def _merge_coco(self, other: StreamEvaluator) -> None:
        """Renumber ``other``'s COCO records as ``_add_coco`` would have numbered them here."""
        n_images, n_annotations = len(self._coco_images), len(self._coco_annotations)
        # all built before any list grows, so that merging an evaluator into itself works
        images = [
            {**img, "id": img["id"] + n_images, "file_name": _stem(self.frames + _frame_of(img["file_name"]))}
            for img in other._coco_images
        ]
        annotations = [
            {**ann, "id": ann["id"] + n_annotations, "image_id": ann["image_id"] + n_images}
            for ann in other._coco_annotations
        ]
        predictions = [{**p, "image_id": p["image_id"] + n_images} for p in other._coco_predictions]
        self._coco_images += images
        self._coco_annotations += annotations
        self._coco_predictions += predictions
        self._coco_categories = self._coco_categories or other._coco_categories

    def __getstate__(self) -> dict[str, Any]:
        # The lookup is rebuilt where it is next needed: not sent with every one-frame evaluator.
        return {**self.__dict__, "_label_to_train": None, "state_version": STATE_VERSION}

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state.pop("state_version", None)
        if version != STATE_VERSION:
            raise ConfigError(f"saved StreamEvaluator state has version {version}, this code reads {STATE_VERSION}")
        self.__dict__.update({"_label_to_train": None, **state})

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self.frames}
        if self._semantic is not None:
            out["semantic"] = self._semantic.result()
        if self._instance is not None:
            gt = {
                "images": self._coco_images,
                "annotations": self._coco_annotations,
                "categories": self._coco_categories,
            }
            out["instance"] = {"cityscapes": self._instance.result(), "coco": coco_mask_ap(gt, self._coco_predictions)}
        if self._panoptic is not None:
            out["panoptic"] = self._panoptic.result()
        if self._conditions:
            out["conditions"] = {
                cond: {
                    "frames": self._condition_frames[cond],
                    **{k: v for k, v in summarize(conf, self.labels.class_names).items() if k != "iou"},
                }
                for cond, conf in sorted(self._conditions.items())
            }
        return out


GT_KINDS = ("label_ids", "instance_ids")
PRED_KINDS = ("class_map", "instance_map", "scores", "panoptic")


class FrameJoiner:
    """Pairs ground truth and predictions of the same frame, keyed by (camera namespace,
    header stamp), arriving in any order; a frame is evaluated as soon as it is complete
    (``expected`` prediction kinds, both ground-truth images and, where the bag has it, the
    condition), so only frames in flight are held in memory."""

    def __init__(
        self,
        evaluator: StreamEvaluator,
        expected: tuple[str, ...],
        conditions_for: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.evaluator = evaluator
        self.expected = tuple(k for k in expected if k in PRED_KINDS)
        self.conditions_for = conditions_for  # namespaces whose bag carries gt/condition
        self._pending: dict[tuple[str, int], dict[str, Any]] = {}
        self.matched = 0

    def add(self, namespace: str, stamp_ns: int, kind: str, value: Any) -> None:
        key = (namespace, stamp_ns)
        entry = self._pending.setdefault(key, {})
        entry[kind] = value
        if self._complete(namespace, entry):
            self._evaluate(self._pending.pop(key))

    def _complete(self, namespace: str, entry: dict[str, Any]) -> bool:
        need = (*GT_KINDS, *self.expected, *(("condition",) if namespace in self.conditions_for else ()))
        return all(k in entry for k in need)

    def _evaluate(self, entry: dict[str, Any]) -> None:
        self.evaluator.add(
            entry["label_ids"],
            entry["instance_ids"],
            entry.get("condition", ""),
            class_map=entry.get("class_map"),
            instance_map=entry.get("instance_map"),
            scores=entry.get("scores"),
            panoptic=entry.get("panoptic"),
        )
        self.matched += 1

    def finish(self) -> int:
        """Evaluate leftovers that have ground truth and at least one prediction (e.g. a
        missing condition message); returns how many frames could not be paired."""
        unpaired = 0
        for entry in self._pending.values():
            if all(k in entry for k in GT_KINDS) and any(k in entry for k in self.expected):
                self._evaluate(entry)
            elif any(k in entry for k in self.expected):
                unpaired += 1
        self._pending.clear()
        return unpaired
