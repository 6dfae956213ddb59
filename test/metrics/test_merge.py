"""Evaluators merge exactly: each recorded drive evaluated in a process of its own, pickled, and
the pickles merged in frame order give the very result (==, to the last bit) of one evaluator
fed every frame in order.

Frames: the generated scenes of ``test_metrics`` with the special cases of the official rules
(void, groups, small and ignored instances) and its corrupted predictions (tied scores
included), plus more generated frames; every frame has a class map (train ids), an instance
map with scores, a panoptic map and one of two condition tags.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from typing import Any

import numpy as np
import pytest

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet, load_label_set
from seg_perception.metrics.cityscapes.common import label_tables
from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
from seg_perception.metrics.cityscapes.panoptic import PanopticEvaluator
from seg_perception.metrics.cityscapes.semantic import SemanticEvaluator
from seg_perception.metrics.confusion import confusion_matrix, summarize
from seg_perception.metrics.stream import StreamEvaluator, frame_confusion
from seg_perception.synthetic.frames import generate_frame
from test.metrics.test_metrics import H, W, _ground_truth_frames, _predict

CONDITIONS = ("day", "night")


@pytest.fixture(scope="module")
def labels() -> LabelSet:
    return load_label_set("cityscapes")


@pytest.fixture(scope="module")
def frames(labels) -> list[dict[str, Any]]:
    """``StreamEvaluator.add`` arguments of 12 frames, conditions alternating."""
    scenes = _ground_truth_frames() + [generate_frame(23, i, W, H, "night") for i in range(5, 12)]
    to_train = labels.label_to_train_id()
    rng = np.random.default_rng(7)
    out = []
    for k, fr in enumerate(scenes):
        sem, imap, scores, pan = _predict(fr, rng)
        class_map = to_train[sem]
        class_map[class_map == 255] = 0  # nodes publish train ids only: labels without one read as road
        out.append(
            {
                "gt_label_ids": fr.label_ids,
                "gt_instance_ids": fr.instance_ids,
                "condition": CONDITIONS[k % 2],
                "class_map": class_map,
                "instance_map": imap,
                "scores": scores,
                "panoptic": pan,
            }
        )
    return out


def evaluate(labels: LabelSet, frames: list[dict[str, Any]]) -> StreamEvaluator:
    ev = StreamEvaluator(labels)
    for f in frames:
        ev.add(**f)
    return ev


def shipped(ev: StreamEvaluator) -> StreamEvaluator:
    """The evaluator as another process gets it (sent between processes or saved per bag)."""
    loaded = pickle.loads(pickle.dumps(ev))
    assert isinstance(loaded, StreamEvaluator)
    return loaded


def assert_identical(a: Any, b: Any, path: str = "result") -> None:
    """Nested dicts / lists equal: same keys in the same order, same types, floats ==, NaN == NaN."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f"{path}: nan != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def whole(labels, frames) -> StreamEvaluator:
    return evaluate(labels, frames)


def test_pickled_chunks_merged_in_order_equal_one_evaluator_of_every_frame(labels, frames, whole) -> None:
    # an empty evaluator on the receiving side and in the middle: sub-evaluators None on either side
    merged = StreamEvaluator(labels)
    for chunk in (frames[:5], [], frames[5:10]):
        merged.merge(shipped(evaluate(labels, chunk)))
    for f in frames[10:]:  # frames added after a merge continue its running ids and offsets
        merged.add(**f)
    merged = shipped(merged)
    want = whole.result()
    assert want["frames"] == len(frames) == 12
    assert set(want) == {"frames", "semantic", "instance", "panoptic", "conditions"}
    assert set(want["conditions"]) == set(CONDITIONS)
    assert_identical(merged.result(), want)
    # what the result does not show: COCO file names and ids numbered as by one evaluator
    assert merged._coco_images == whole._coco_images
    assert merged._coco_annotations == whole._coco_annotations


def test_merging_in_another_order_changes_only_what_depends_on_the_frame_order(labels, frames, whole) -> None:
    """Counts and the Cityscapes AP do not depend on the order. Float sums in frame order (iIoU,
    SQ/PQ) differ in the last bits, and COCO AP more: pycocotools ranks tied scores by image id,
    and these predictions tie (scores of one decimal), which moves COCO AP here by about 0.003
    and a class's AP by up to 0.07. So order matters: merge in frame order."""
    parts = [shipped(evaluate(labels, c)) for c in (frames[8:], frames[:3], frames[3:8])]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    got, want = merged.result(), whole.result()
    assert got["frames"] == want["frames"] == len(frames)
    assert got["semantic"]["confusion_matrix"] == want["semantic"]["confusion_matrix"]
    assert_identical(got["conditions"], want["conditions"])  # integer confusion counts
    for name, cls in want["panoptic"]["per_class"].items():
        mine = got["panoptic"]["per_class"][name]
        assert (mine["tp"], mine["fp"], mine["fn"]) == (cls["tp"], cls["fp"], cls["fn"])
    assert_identical(got["instance"]["cityscapes"], want["instance"]["cityscapes"])  # order-free
    assert got["semantic"]["miIoU"] == pytest.approx(want["semantic"]["miIoU"], rel=1e-12)
    assert got["panoptic"]["All"]["pq"] == pytest.approx(want["panoptic"]["All"]["pq"], rel=1e-12)


def test_merging_empty_evaluators_gives_an_empty_result(labels) -> None:
    ev = StreamEvaluator(labels)
    ev.merge(shipped(StreamEvaluator(labels)))
    assert ev.result() == {"frames": 0}


def test_a_semantic_frame_without_instance_ids_makes_iiou_nan_after_merging_too(labels, frames) -> None:
    def semantic(chunk: list[dict[str, Any]], with_instances: bool) -> SemanticEvaluator:
        ev = SemanticEvaluator(labels)
        for f in chunk:
            pred = labels.train_to_label_id()[f["class_map"]]
            ev.add(pred, f["gt_label_ids"], f["gt_instance_ids"] if with_instances else None)
        return ev

    whole = semantic(frames[:2], True)
    whole.add(labels.train_to_label_id()[frames[2]["class_map"]], frames[2]["gt_label_ids"])
    merged = semantic(frames[:2], True)
    merged.merge(pickle.loads(pickle.dumps(semantic(frames[2:3], False))))
    assert math.isnan(merged.result()["miIoU"])
    assert_identical(merged.result(), whole.result())


def test_evaluators_of_different_label_sets_do_not_merge(labels) -> None:
    renamed = dataclasses.replace(labels, name="other")
    with pytest.raises(ConfigError, match="label sets"):
        StreamEvaluator(labels).merge(StreamEvaluator(renamed))
    car = labels.by_name("car")
    recoloured = tuple(dataclasses.replace(lab, color=(1, 2, 3)) if lab is car else lab for lab in labels.labels)
    other = dataclasses.replace(labels, labels=recoloured)
    for kind in (SemanticEvaluator, InstanceEvaluator, PanopticEvaluator):
        with pytest.raises(ConfigError, match="label sets"):
            kind(labels).merge(kind(other))  # type: ignore[arg-type]
    # the default label set (None) is the Cityscapes one
    SemanticEvaluator().merge(SemanticEvaluator(labels))


def test_pickles_hold_no_lookup_tables_and_refuse_another_version(labels, frames) -> None:
    ev = evaluate(labels, frames[:1])
    data = pickle.dumps(ev)
    loaded = pickle.loads(data)
    tables = label_tables(labels)
    assert loaded._semantic.t is tables and loaded._instance.t is tables and loaded._panoptic.t is tables
    assert len(data) < len(pickle.dumps(tables)) // 4  # the 65536-entry tables are not in it
    for kind in (StreamEvaluator, SemanticEvaluator, InstanceEvaluator, PanopticEvaluator):
        fresh = kind(labels)
        state = {**fresh.__getstate__(), "state_version": 0}
        with pytest.raises(ConfigError, match="version 0"):
            kind.__new__(kind).__setstate__(state)


def test_frame_confusion_is_the_matrix_summed_per_condition(labels, frames, whole) -> None:
    day = [f for f in frames if f["condition"] == "day"]
    total = sum(frame_confusion(f["class_map"], f["gt_label_ids"], labels) for f in day)
    got = whole.result()["conditions"]["day"]
    assert got == {"frames": len(day), **{k: v for k, v in summarize(total, labels.class_names).items() if k != "iou"}}
    f = frames[0]
    conf = frame_confusion(f["class_map"], f["gt_label_ids"], labels)
    assert conf.dtype == np.int64 and conf.shape == (labels.num_classes,) * 2
    assert (conf == confusion_matrix(f["class_map"], labels.label_to_train_id()[f["gt_label_ids"]], 19)).all()
