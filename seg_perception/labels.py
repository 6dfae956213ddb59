"""Label sets: class names, ids, palettes, and the train id <-> label id maps.

A label set file (``config/labels/<name>.yaml``) lists every label with its Cityscapes-style
fields; models predict *train ids* (0..N-1, 255 = ignore) and files in the Cityscapes layout
store *label ids*.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from seg_perception.errors import ConfigError
from seg_perception.resources import config_yaml

IGNORE = 255


@dataclass(frozen=True)
class Label:
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


@dataclass(frozen=True)
class LabelSet:
    """A parsed label set. ``classes`` are the trained classes, indexed by train id."""

    name: str
    labels: tuple[Label, ...]
    classes: tuple[Label, ...]
    ignore_train_id: int = IGNORE

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def thing_train_ids(self) -> list[int]:
        return [c.train_id for c in self.classes if c.has_instances]

    @property
    def thing_classes(self) -> tuple[Label, ...]:
        return tuple(c for c in self.classes if c.has_instances)

    def palette(self) -> npt.NDArray[np.uint8]:
        """(256, 3) uint8 RGB colours indexed by train id; unknown and ignore ids are black."""
        lut = np.zeros((256, 3), np.uint8)
        for c in self.classes:
            lut[c.train_id] = c.color
        return lut

    def train_to_label_id(self) -> npt.NDArray[np.uint8]:
        """(256,) uint8 lookup: train id -> label id (ignore -> 0, 'unlabeled')."""
        lut = np.zeros(256, np.uint8)
        for c in self.classes:
            lut[c.train_id] = c.id
        return lut

    def label_to_train_id(self) -> npt.NDArray[np.uint8]:
        """(256,) uint8 lookup: label id -> train id (labels not trained -> ignore)."""
        lut = np.full(256, self.ignore_train_id, np.uint8)
        for lab in self.labels:
            if 0 <= lab.id < 256 and 0 <= lab.train_id < 255:
                lut[lab.id] = lab.train_id
        return lut

    def by_name(self, name: str) -> Label:
        for lab in self.labels:
            if lab.name == name:
                return lab
        raise ConfigError(f"label set {self.name!r} has no label {name!r}")


def _rgb(colour: Any) -> tuple[int, int, int]:
    """A label's ``[r, g, b]`` entry; ValueError unless it has exactly three values."""
    red, green, blue = (int(v) for v in colour)
    return red, green, blue


def load_label_set(name_or_path: str | Path = "cityscapes") -> LabelSet:
    """Load ``config/labels/<name>.yaml`` or a YAML file path."""
    path = config_yaml(name_or_path, "labels", "label set")
    try:
        raw = yaml.safe_load(path.read_text())
        ignore = int(raw.get("ignore_train_id", IGNORE))
        labels = tuple(
            Label(str(n), int(i), int(t), str(cat), bool(inst), bool(ign), _rgb(col))
            for n, i, t, cat, inst, ign, col in raw["labels"]
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"label set {path} is malformed: {err}") from err
    classes = sorted((lab for lab in labels if 0 <= lab.train_id < ignore), key=lambda c: c.train_id)
    if [c.train_id for c in classes] != list(range(len(classes))):
        raise ConfigError(f"label set {path}: train ids must be 0..N-1 without gaps")
    return LabelSet(str(raw.get("name", path.stem)), labels, tuple(classes), ignore)
