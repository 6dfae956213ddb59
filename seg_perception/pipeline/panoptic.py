"""Panoptic fusion: a semantic class map and an instance map -> one uint16 panoptic map.

Encoding (contract, ``panoptic/panoptic_map``): the Cityscapes instanceIds layout, as the
instance map. Thing pixels owned by an instance carry ``label_id * 1000 + k`` (the instance
map's value, unchanged); every other pixel carries the Cityscapes *label id* of its semantic
class (train id -> label id through :meth:`LabelSet.train_to_label_id`; ignore -> 0).

Conflict rule, per pixel covered by an instance:

* the semantic map says a **thing** class (any of them, not necessarily the instance's
  class): the instance wins;
* the semantic map says **ignore** / an untrained id (no claim): the instance wins;
* the semantic map says a **stuff** class (road, building, sky, ...): the instance wins only
  if its score is ``>= instance_overrides_stuff_score`` (default 0.5); otherwise the pixel
  keeps the stuff class.

Pixels covered by no instance keep their semantic class, including pixels the semantic map
calls a thing class: they get the plain label id of that class (e.g. 26 for car), which
Cityscapes reads as "crowd / not a separate instance".

Why this rule: the semantic model is the better judge of amorphous regions and the instance
model of object extents. A thing-vs-thing disagreement is about which object, which the
instance model decides; a thing-vs-stuff disagreement is trusted to the instance only when it
is confident, which stops weak detections from painting boxes of "car" over road while
letting confident objects keep their full masks where the semantic boundary is soft. It is
a pure per-pixel rule: no segment-level matching, deterministic, vectorised, and the
instance values in the panoptic map are those of the instance map on a subset of its pixels,
so ``instance/detections`` ids stay valid for the panoptic map (a weak instance lying wholly on
stuff can lose all its pixels there).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from seg_perception.labels import LabelSet
from seg_perception.pipeline.instance import UINT16_MAX, InstanceResult


def fuse_panoptic(
    class_map: npt.NDArray[np.uint8],
    instance_result: InstanceResult,
    label_set: LabelSet,
    instance_overrides_stuff_score: float = 0.5,
) -> npt.NDArray[np.uint16]:
    """(H, W) uint8 train ids + the same frame's :class:`InstanceResult` -> (H, W) uint16
    panoptic map (see the module docstring for the rule)."""
    inst = instance_result.instance_map
    if class_map.shape != inst.shape:
        raise ValueError(f"class map {class_map.shape} and instance map {inst.shape} differ in size")
    if class_map.dtype != np.uint8:
        raise TypeError(f"class map must hold uint8 train ids, got {class_map.dtype}")
    label_ids = label_set.train_to_label_id().astype(np.uint16)
    stuff = np.zeros(256, bool)
    for c in label_set.classes:
        stuff[c.train_id] = not c.has_instances
    confident = np.zeros(UINT16_MAX + 1, bool)
    confident[[r.value for r in instance_result.instances if r.score >= instance_overrides_stuff_score]] = True

    panoptic = label_ids[class_map]
    covered = inst > 0
    instance_wins = covered & (~stuff[class_map] | confident[inst])
    np.copyto(panoptic, inst, where=instance_wins)
    return panoptic
