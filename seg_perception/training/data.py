"""Training data: generated road scenes as a torch Dataset, Mask R-CNN targets from Cityscapes
instance ids, and ENet class weights from the stream's pixel shares.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seg_perception.errors import SegPerceptionError
from seg_perception.labels import LabelSet
from seg_perception.synthetic.frames import generate_frame
from seg_perception.training.config import TrainConfig

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]  # image, train ids, instance ids


class SyntheticData(Dataset[Sample]):
    """Frame i of the training stream, horizontally flipped by a seeded coin:
    uint8 (H, W, 3) RGB, (H, W) uint8 train ids, (H, W) uint16 instance ids."""

    def __init__(self, seed: int, height: int, width: int, length: int) -> None:
        self.seed, self.height, self.width, self.length = seed, height, width, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        frame = generate_frame(self.seed, index, self.width, self.height)
        image, train_ids, instance_ids = frame.image, frame.train_ids, frame.instance_ids
        if np.random.default_rng([self.seed, index, 99]).random() < 0.5:
            image, train_ids, instance_ids = image[:, ::-1], train_ids[:, ::-1], instance_ids[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(train_ids), np.ascontiguousarray(instance_ids)


def instance_targets(instance_ids: np.ndarray, labels: LabelSet, min_area: int = 16) -> dict[str, torch.Tensor]:
    """torchvision detection targets from a Cityscapes instanceIds image. Model classes are
    background + the label set's thing classes in train-id order."""
    class_of = {c.id: i + 1 for i, c in enumerate(labels.thing_classes)}
    boxes, classes, masks = [], [], []
    for value in np.unique(instance_ids[instance_ids >= 1000]):
        cls = class_of.get(int(value) // 1000)
        mask = instance_ids == value
        if cls is None or mask.sum() < min_area:
            continue
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        classes.append(cls)
        masks.append(mask)
    h, w = instance_ids.shape
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(classes, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
    }


def _collate(batch: list[Sample]) -> list[Sample]:
    """Keep a batch as a list of samples (frames of one batch may differ in instance count)."""
    return batch


def class_weights(cfg: TrainConfig, labels: LabelSet, frames: int = 64) -> list[float] | None:
    """Per-class loss weights from the pixel shares of the first ``frames`` frames of the
    training stream (deterministic for the seed); None without ``class_weights``."""
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights != "enet":
        raise SegPerceptionError(f"unknown class weighting {cfg.class_weights!r}; expected none or enet")
    data = SyntheticData(cfg.seed, cfg.height, cfg.width, frames)
    counts = np.zeros(labels.num_classes, np.int64)
    for i in range(frames):
        ids = data[i][1]
        counts += np.bincount(ids[ids < labels.num_classes].ravel(), minlength=labels.num_classes)
    share = counts / max(counts.sum(), 1)
    return [round(float(1.0 / np.log(1.02 + p)), 3) for p in share]
