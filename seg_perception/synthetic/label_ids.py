"""Cityscapes label ids painted by the generator, and the label-set lookups built on them.

The constants are the ``id`` fields of ``config/labels/cityscapes.yaml`` (the tests check them
against the file); they are the values of the label-id maps and, times 1000 plus a per-class
instance number, of the instance-id maps.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from seg_perception.labels import LabelSet, load_label_set

UNLABELED = 0
ROAD, SIDEWALK = 7, 8
BUILDING, WALL, FENCE = 11, 12, 13
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS = 24, 25, 26, 27, 28
MOTORCYCLE, BICYCLE = 32, 33
THING_LABEL_IDS = (PERSON, RIDER, CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE)


@functools.lru_cache(maxsize=1)
def cityscapes_label_set() -> LabelSet:
    """The Cityscapes label set (parsed once)."""
    return load_label_set("cityscapes")


@functools.lru_cache(maxsize=1)
def label_to_train_lut() -> npt.NDArray[np.uint8]:
    """(256,) uint8 read-only lookup: label id -> train id (255 = ignore)."""
    lut: npt.NDArray[np.uint8] = cityscapes_label_set().label_to_train_id()
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=1)
def _label_colour_lut() -> npt.NDArray[np.uint8]:
    lut = np.zeros((256, 3), np.uint8)
    for label in cityscapes_label_set().labels:
        if 0 <= label.id < 256:
            lut[label.id] = label.color
    lut.setflags(write=False)
    return lut


def colorize_label_ids(label_ids: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W) Cityscapes label ids -> (H, W, 3) uint8 RGB with the label set colours."""
    return _label_colour_lut()[label_ids]
