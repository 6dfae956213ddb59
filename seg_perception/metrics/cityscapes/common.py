"""What the three Cityscapes evaluators share: label-id lookup tables derived from a label set
(Cityscapes field semantics), the panoptic categories, and the official float accumulation order.
"""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from seg_perception.errors import ConfigError
from seg_perception.labels import Label, LabelSet, load_label_set

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
#: segments of one panoptic image: ``id`` (sorted), ``category_id`` (label id), ``iscrowd``
#: (0/1) and ``area`` (pixels), equally long int64 arrays
Segments: TypeAlias = dict[str, IntArray]

#: segment id of unlabelled pixels in the COCO panoptic format
VOID = 0


class LabelTables:
    """Label-id indexed lookup tables of a label set (ids 0..n-1, n = largest id >= 0 plus 1),
    and 65536-entry tables over ``instanceIds`` values (``label_id*1000 + k`` or a label id)."""

    def __init__(self, ls: LabelSet) -> None:
        self.all_labels: tuple[Label, ...] = ls.labels
        eval_labels = [lab for lab in ls.labels if lab.id >= 0]  # official args.evalLabels
        if not eval_labels:
            raise ConfigError(f"label set {ls.name!r} has no label with id >= 0")
        n = max(lab.id for lab in eval_labels) + 1
        if n > 256:
            raise ConfigError(f"label set {ls.name!r}: label ids must be < 256")
        self.n = n
        self.known: BoolArray = np.zeros(n, bool)
        self.ignored: BoolArray = np.ones(n, bool)
        self.has_inst: BoolArray = np.zeros(n, bool)
        self.name = [""] * n
        self.by_id: dict[int, Label] = {}
        for lab in eval_labels:  # later duplicates win, like the official id2label
            self.by_id[lab.id] = lab
        for i, lab in self.by_id.items():
            self.known[i] = True
            self.ignored[i] = lab.ignore_in_eval
            self.has_inst[i] = lab.has_instances
            self.name[i] = lab.name
        self.eval_ids = [lab.id for lab in eval_labels]  # conf-matrix rows/cols, file order
        self.class_ids = [i for i in self.eval_ids if self.known[i] and not self.ignored[i]]  # evaluated classes
        # categories in order of first appearance (official category2labels), all labels incl. id < 0
        self.categories: list[str] = list(dict.fromkeys(lab.category for lab in ls.labels))
        self.cat_labels = {c: [lab for lab in ls.labels if lab.category == c] for c in self.categories}
        self.cat_index: IntArray = np.full(n, -1, np.int64)
        for i, lab in self.by_id.items():
            self.cat_index[i] = self.categories.index(lab.category)
        # classes of the instance statistics / instance eval: hasInstances and not ignoreInEval
        self.inst_ids = list(
            dict.fromkeys(lab.id for lab in eval_labels if lab.has_instances and not lab.ignore_in_eval)
        )
        self.inst_categories = self._instance_categories()
        # (n_categories, 256): predicted label id belongs to the category's instance labels
        self.cat_member: BoolArray = np.zeros((len(self.categories), 256), bool)
        for c, ids in self.inst_categories.items():
            self.cat_member[self.categories.index(c), ids] = True
        values = np.arange(65536, dtype=np.int64)
        self.value_label: IntArray = np.where(values < 1000, values, values // 1000)  # Instance.getLabelID
        in_range = self.value_label < n
        self.value_known: BoolArray = in_range & self.known[np.where(in_range, self.value_label, 0)]
        # void of the instance-level evaluation: values equal to an ignoreInEval id (-1 included)
        self.value_void: BoolArray = np.isin(values, [lab.id for lab in ls.labels if lab.ignore_in_eval])

    def _instance_categories(self) -> dict[str, list[int]]:
        """Categories whose labels (id >= 0) all have instances, with those label ids."""
        out: dict[str, list[int]] = {}
        for c in self.categories:
            labels = [lab for lab in self.cat_labels[c] if lab.id >= 0]
            if all(lab.has_instances for lab in labels):
                out[c] = [lab.id for lab in labels]
        return out


@functools.lru_cache(maxsize=8)
def label_tables(label_set: LabelSet | None = None) -> LabelTables:
    """The tables of ``label_set`` (default: ``config/labels/cityscapes.yaml``, found through
    :mod:`seg_perception.resources` by :func:`~seg_perception.labels.load_label_set`), cached."""
    return LabelTables(label_set if label_set is not None else load_label_set("cityscapes"))


def panoptic_categories(label_set: LabelSet | None = None) -> list[dict[str, Any]]:
    """The ``categories`` of the official panoptic conversion: labels not ignored, in file order."""
    return [
        {
            "id": int(lab.id),
            "name": lab.name,
            "color": list(lab.color),
            "supercategory": lab.category,
            "isthing": 1 if lab.has_instances else 0,
        }
        for lab in label_tables(label_set).all_labels
        if not lab.ignore_in_eval
    ]


def sequential_sum(parts: list[FloatArray]) -> float:
    """Left-to-right float sum of the concatenated ``parts`` starting at 0.0, as ``total += x``
    in the official scripts' Python loops (``np.cumsum`` accumulates in that order; ``np.sum``
    sums pairwise and can differ in the last bits)."""
    if not parts:
        return 0.0
    a = np.concatenate(parts).astype(np.float64)
    return float(np.cumsum(a)[-1]) if a.size else 0.0


#: version of the evaluators' pickled state; a state of another version is refused, not misread
STATE_VERSION = 1


class PickledWithoutTables:
    """Evaluators pickle without their lookup tables (``t``, ~0.7 MB; fleet jobs ship one
    evaluator per frame), which are rebuilt from ``label_set`` on loading."""

    label_set: LabelSet | None
    t: LabelTables

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "t"}
        return {**state, "state_version": STATE_VERSION}

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state.pop("state_version", None)
        if version != STATE_VERSION:
            name = type(self).__name__
            raise ConfigError(f"saved {name} state has version {version}, this code reads {STATE_VERSION}")
        self.__dict__.update(state)
        self.t = label_tables(self.label_set)
