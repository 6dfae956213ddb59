"""Our metrics equal the official Cityscapes scripts and pycocotools on the same files.

Ground truth: a few small generated frames, edited to contain the cases the official rules
treat specially (void pixels, an ego-vehicle strip, a car group and a person group, an
ignored caravan instance, a car smaller than the 100-pixel minimum). Predictions: the ground
truth corrupted (shifted, eroded, class-swapped, dropped instances, false positives, tied
scores), written in our layout and in the official tools' input formats.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from seg_perception.errors import ConfigError, SegPerceptionError
from seg_perception.labels import load_label_set
from seg_perception.metrics.cityscapes.files import write_instance_predictions, write_panoptic_json
from seg_perception.metrics.cityscapes.instance import InstanceEvaluator
from seg_perception.metrics.cityscapes.panoptic import PanopticEvaluator, gt_panoptic_segments, pred_panoptic_segments
from seg_perception.metrics.cityscapes.semantic import AVG_CLASS_SIZE, SemanticEvaluator
from seg_perception.metrics.coco import coco_ground_truth, coco_mask_ap, coco_predictions
from seg_perception.metrics.run import evaluate_paths, main_eval
from seg_perception.synthetic.frames import generate_frame
from seg_perception.synthetic.writers import write_cityscapes

cs_labels = pytest.importorskip("cityscapesscripts.helpers.labels")
px_eval = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
inst_eval = pytest.importorskip("cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling")
pq_eval = pytest.importorskip("cityscapesscripts.evaluation.evalPanopticSemanticLabeling")
create_panoptic = pytest.importorskip("cityscapesscripts.preparation.createPanopticImgs")
pytest.importorskip("pycocotools")

W, H, N_FRAMES, SEED = 256, 128, 5, 11
TOL = 1e-12  # the re-implementation sums in the official order; differences are rounding only


# --------------------------------------------------------------------------------------
# running the official tools


def _in1d(ar1, ar2, assume_unique=False, invert=False):
    """np.in1d was removed in numpy 2.4; the official scripts still call it."""
    return np.isin(np.asarray(ar1).ravel(), ar2, invert=invert)


def _write_dict_to_json(obj, file_name):
    """csHelpers.writeDict2JSON, tolerating numpy scalars (np.count_nonzero returns them in numpy 2)."""
    with open(file_name, "w") as f:
        f.write(
            json.dumps(
                obj, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__, sort_keys=True, indent=4
            )
        )


class _InlinePool:
    """multiprocessing.Pool stand-in for the official PQ script: runs the jobs in-process."""

    def __init__(self, processes=None):
        pass

    def apply_async(self, fn, args):
        value = fn(*args)
        return SimpleNamespace(get=lambda: value)

    def close(self):
        pass


@contextlib.contextmanager
def official(workdir: Path):
    """Environment for the official scripts: numpy shim, quiet, cwd (they write matches.json
    and their result files into the working directory)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "in1d", _in1d, raising=False)
        mp.setattr(inst_eval, "writeDict2JSON", _write_dict_to_json)
        mp.setattr(pq_eval, "multiprocessing", SimpleNamespace(cpu_count=lambda: 1, Pool=_InlinePool))
        mp.setenv("CITYSCAPES_DATASET", str(workdir))
        mp.chdir(workdir)
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def official_pixel_level(preds: list[Path], gts: list[Path], workdir: Path) -> dict:
    a = copy.copy(px_eval.args)
    a.quiet, a.JSONOutput, a.evalPixelAccuracy, a.colorized, a.bold, a.nocol = True, False, False, False, "", ""
    a.exportFile = str(workdir / "pixel.json")
    with official(workdir):
        return px_eval.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], a)


def official_instance_level(txts: list[Path], gts: list[Path], pred_root: Path, workdir: Path) -> dict:
    a = copy.copy(inst_eval.args)
    a.quiet, a.JSONOutput, a.colorized, a.csv = True, False, False, False
    a.gtInstancesFile = str(workdir / "gtInstances.json")  # its cache; default is inside site-packages
    a.predictionPath = os.path.abspath(pred_root)  # needed by readPredInfo with explicit file lists
    a.predictionWalk = None
    a.exportFile = str(workdir / "instance.json")
    with official(workdir):
        return inst_eval.evaluateImgLists([str(p) for p in txts], [str(g) for g in gts], a)


def same(a: float, b: float, tol: float = TOL) -> bool:
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


# --------------------------------------------------------------------------------------
# data


def _ground_truth_frames() -> list:
    frames = []
    for i in range(N_FRAMES):
        fr = generate_frame(SEED, i, W, H, "day")
        lab, inst = fr.label_ids.copy(), fr.instance_ids.copy()
        if i == 0:  # void block over part of the scene
            lab[5:40, 90:170] = 0
            inst[5:40, 90:170] = 0
        if i == 1:  # the largest car becomes a group ("cars", iscrowd)
            cars = [v for v in np.unique(inst) if v // 1000 == 26]
            big = max(cars, key=lambda v: int((inst == v).sum()))
            inst[inst == big] = 26
            lab[5:25, 5:40] = 24  # and a person group
            inst[5:25, 5:40] = 24
        if i == 2:  # an ignored caravan instance
            lab[85:110, 10:70] = 29
            inst[85:110, 10:70] = 29001
        if i == 3:  # a car below the 100-pixel minimum region size, and a small car group
            lab[60:64, 200:205] = 26
            inst[60:64, 200:205] = 26099
            lab[20:26, 100:108] = 26
            inst[20:26, 100:108] = 26
        if i == 4:  # ego vehicle strip
            lab[-8:, :] = 1
            inst[-8:, :] = 1
        frames.append(dataclasses.replace(fr, label_ids=lab, instance_ids=inst))
    return frames


def _rect(rng, h_range=(8, 30), w_range=(10, 50)):
    h, w = int(rng.integers(*h_range)), int(rng.integers(*w_range))
    y, x = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
    return slice(y, y + h), slice(x, x + w)


def _predict(fr, rng) -> tuple[np.ndarray, np.ndarray, dict[int, float], np.ndarray]:
    """(label-id prediction, instance map, scores, panoptic map) from a corrupted ground truth."""
    lab, inst = fr.label_ids, fr.instance_ids
    sem = np.roll(lab, (1, 2), axis=(0, 1)).copy()
    r = _rect(rng, (30, 60), (60, 120))
    block = sem[r]
    block[block == 26] = 27  # cars read as trucks
    sem[_rect(rng)] = 0  # unlabeled predicted: false negatives
    sem[_rect(rng)] = 29  # an ignored class predicted
    sem[_rect(rng)] = 24  # a person false positive
    sem[lab == 0] = 26  # anything on void pixels is free
    items: list[tuple[int, np.ndarray, float]] = []
    for v in np.unique(inst):
        if v < 1000:
            continue
        label, m = int(v // 1000), inst == v
        u = rng.random()
        if u < 0.12:
            continue  # missed
        if u < 0.3:
            m = np.roll(m, tuple(int(s) for s in rng.integers(-4, 5, 2)), axis=(0, 1))
        elif u < 0.45:
            m = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        elif u < 0.55 and label in (26, 27):
            label = 53 - label  # car <-> truck
        items.append((label, m, round(float(rng.random()), 1)))  # one decimal: tied scores
    for _ in range(3):  # false positives
        m = np.zeros_like(lab, bool)
        m[_rect(rng)] = True
        items.append((int(rng.choice([24, 26])), m, round(float(rng.random()), 2)))
    m = np.zeros_like(lab, bool)  # on ignore regions: void / groups / small instances / caravan
    if fr.index == 0:
        m[8:38, 95:165] = True
        items.append((26, m, 0.95))
    elif fr.index == 1:
        cols = np.flatnonzero((inst == 26).any(0))
        m[:, cols[0] : cols[0] + max(1, int(0.4 * cols.size))] = True
        items.append((26, m & (inst == 26), 0.99))  # inside the group, IoU < 0.5: ignored pixels
        items.append((24, inst == 24, 0.9))
    elif fr.index == 3:
        m[58:66, 198:207] = True
        items.append((26, m, 0.95))
        m = np.zeros_like(lab, bool)
        m[20:31, 100:108] = True  # 48 small-group pixels of 88: ignored only by the double count
        items.append((26, m, 0.99))
    if fr.index == 2:
        items.append((29, inst == 29001, 0.5))  # caravan: not evaluated
        items.append((26, inst == 29001, 0.4))  # a car on the caravan: a false positive
    imap = np.zeros(lab.shape, np.uint16)
    scores: dict[int, float] = {}
    for label in sorted({it[0] for it in items}):
        ranked = sorted((it for it in items if it[0] == label), key=lambda it: -it[2])
        for k, (_, _m, s) in enumerate(ranked, start=1):
            scores[label * 1000 + k] = s
    for label in sorted({it[0] for it in items}):  # paint: higher scores last (on top)
        ranked = sorted((it for it in items if it[0] == label), key=lambda it: -it[2])
        for k in range(len(ranked), 0, -1):
            imap[ranked[k - 1][1]] = label * 1000 + k
    pan = sem.astype(np.uint16)
    pan[imap > 0] = imap[imap > 0]
    return sem, imap, scores, pan


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("metrics")
    frames = _ground_truth_frames()
    gt_root = root / "gt"
    write_cityscapes(gt_root, frames, city="synth", split="val")
    gt_dir = gt_root / "gtFine" / "val" / "synth"
    stems = [f"synth_000000_{fr.index:06d}" for fr in frames]
    pred_dir = root / "pred" / "synth"  # our layout
    pred_dir.mkdir(parents=True)
    official_inst = root / "official_instances"
    rng = np.random.default_rng(5)
    preds = []
    for stem, fr in zip(stems, frames):
        sem, imap, scores, pan = _predict(fr, rng)
        preds.append((sem, imap, scores, pan))
        cv2.imwrite(str(pred_dir / f"{stem}_classes.png"), sem)
        cv2.imwrite(str(pred_dir / f"{stem}_instances.png"), imap)
        (pred_dir / f"{stem}_instances.json").write_text(json.dumps({str(k): v for k, v in scores.items()}))
        cv2.imwrite(str(pred_dir / f"{stem}_panoptic.png"), pan)
        write_instance_predictions(official_inst, stem, imap, scores)
    return SimpleNamespace(
        root=root,
        frames=frames,
        stems=stems,
        preds=preds,
        gt_root=gt_root,
        pred_root=root / "pred",
        gt_labels=[gt_dir / f"{s}_gtFine_labelIds.png" for s in stems],
        gt_instances=[gt_dir / f"{s}_gtFine_instanceIds.png" for s in stems],
        classes=[pred_dir / f"{s}_classes.png" for s in stems],
        official_inst=official_inst,
        official_txts=[official_inst / f"{s}.txt" for s in stems],
    )


@pytest.fixture(scope="module")
def official_semantic(data) -> dict:
    return official_pixel_level(data.classes, data.gt_labels, data.root / "px")


@pytest.fixture(scope="module")
def official_instances(data) -> dict:
    return official_instance_level(data.official_txts, data.gt_instances, data.official_inst, data.root / "inst")


@pytest.fixture(scope="module")
def official_panoptic(data) -> SimpleNamespace:
    work = data.root / "pq"
    pred_json = work / "pred" / "cityscapes_panoptic_val.json"
    write_panoptic_json(pred_json, [(s, *pred_panoptic_segments(p[3])) for s, p in zip(data.stems, data.preds)])
    (work / "gt").mkdir(parents=True)  # convert2panoptic does not create its output folder
    with official(work):
        create_panoptic.convert2panoptic(str(data.gt_root / "gtFine"), str(work / "gt"), setNames=["val"])
        gt_json = work / "gt" / "cityscapes_panoptic_val.json"
        res = pq_eval.evaluatePanoptic(
            str(gt_json),
            str(gt_json.with_suffix("")),
            str(pred_json),
            str(pred_json.with_suffix("")),
            str(work / "result.json"),
        )
    return SimpleNamespace(result=res, gt_json=gt_json)


@pytest.fixture(scope="module")
def ours(data) -> dict:
    return evaluate_paths(data.pred_root, data.gt_root, data.root / "ours.json", out=None)


# --------------------------------------------------------------------------------------
# labels


def test_our_cityscapes_label_file_equals_the_official_labels_field_by_field() -> None:
    ours_ = load_label_set("cityscapes").labels
    official_ = cs_labels.labels
    assert len(ours_) == len(official_)
    for a, b in zip(ours_, official_):
        assert (a.name, a.id, a.train_id, a.category, a.has_instances, a.ignore_in_eval, a.color) == (
            b.name,
            b.id,
            b.trainId,
            b.category,
            b.hasInstances,
            b.ignoreInEval,
            tuple(b.color),
        ), b.name
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "labels" / "cityscapes.yaml").read_text())
    assert [row[0] for row in raw["labels"]] == [lab.name for lab in official_]


def test_average_class_sizes_of_iiou_are_the_official_constants() -> None:
    assert px_eval.args.avgClassSize == AVG_CLASS_SIZE


def test_the_test_data_contains_the_special_cases_of_the_official_rules(data) -> None:
    inst = [fr.instance_ids for fr in data.frames]
    assert (inst[0] == 0).sum() > 1000 and (inst[1] == 26).any() and (inst[1] == 24).any()
    assert (inst[2] == 29001).any() and (inst[3] == 26099).sum() < 100 and (inst[4] == 1).any()
    assert sum(len(p[2]) for p in data.preds) > 60


# --------------------------------------------------------------------------------------
# semantic


def test_semantic_iou_iiou_and_categories_equal_the_official_pixel_level_script(data, official_semantic, ours) -> None:
    off, sem = official_semantic, ours["semantic"]
    assert np.array_equal(np.array(off["confMatrix"], np.uint64), np.array(sem["confusion_matrix"], np.uint64))
    for name, v in sem["classes"].items():
        assert same(v["iou"], off["classScores"][name]), name
        assert same(v["iiou"], off["classInstScores"][name]), name
    ignored = [lab.name for lab in cs_labels.labels if lab.ignoreInEval and lab.id >= 0]
    assert all(math.isnan(off["classScores"][n]) for n in ignored)
    assert set(sem["categories"]) == set(off["categoryScores"])
    for cat, v in sem["categories"].items():
        assert same(v["iou"], off["categoryScores"][cat]), cat
        assert same(v["iiou"], off["categoryInstScores"][cat]), cat
    assert same(sem["mIoU"], off["averageScoreClasses"])
    assert same(sem["miIoU"], off["averageScoreInstClasses"])
    assert same(sem["mean_category_iou"], off["averageScoreCategories"])
    assert same(sem["mean_category_iiou"], off["averageScoreInstCategories"])
    # the data exercises iIoU, NaN classes and imperfect scores
    assert 0.3 < sem["mIoU"] < 0.95 and 0.1 < sem["miIoU"] < 0.95
    assert any(math.isnan(v["iou"]) for v in sem["classes"].values())


def test_semantic_arrays_give_the_same_scores_as_files(data, ours) -> None:
    ev = SemanticEvaluator()
    for fr, p in zip(data.frames, data.preds):
        ev.add(p[0], fr.label_ids, fr.instance_ids)
    res = ev.result()
    for name, v in res["classes"].items():
        assert same(v["iou"], ours["semantic"]["classes"][name]["iou"], 0.0)
        assert same(v["iiou"], ours["semantic"]["classes"][name]["iiou"], 0.0)


def test_pixel_accuracy_is_correct_pixels_over_evaluated_pixels(data, ours) -> None:
    ignored = [lab.id for lab in cs_labels.labels if lab.ignoreInEval]
    correct = evaluated = 0
    for fr, p in zip(data.frames, data.preds):
        valid = ~np.isin(fr.label_ids, ignored)
        evaluated += int(valid.sum())
        correct += int((valid & (p[0] == fr.label_ids)).sum())
    assert ours["semantic"]["pixel_accuracy"] == correct / evaluated


def test_semantic_evaluation_rejects_train_ids_and_size_mismatches(data) -> None:
    fr = data.frames[0]
    with pytest.raises(ConfigError, match="label ids"):
        SemanticEvaluator().add(np.full_like(fr.label_ids, 255), fr.label_ids, fr.instance_ids)
    with pytest.raises(ConfigError, match="differ in size"):
        SemanticEvaluator().add(fr.label_ids[:, :-1], fr.label_ids)


# --------------------------------------------------------------------------------------
# instance level


def _assert_instance_equal(res: dict, off: dict) -> None:
    mine = np.array(res["ap_matrix"])
    theirs = np.array(off["resultApMatrix"])[0]
    assert mine.shape == theirs.shape
    assert np.array_equal(np.isnan(mine), np.isnan(theirs))
    assert np.allclose(mine[~np.isnan(mine)], theirs[~np.isnan(theirs)], atol=TOL, rtol=0)
    assert same(res["AP"], off["averages"]["allAp"])
    assert same(res["AP50"], off["averages"]["allAp50%"])
    for name, v in res["classes"].items():
        assert same(v["ap"], off["averages"]["classes"][name]["ap"]), name
        assert same(v["ap50"], off["averages"]["classes"][name]["ap50%"]), name


def test_instance_ap_equals_the_official_instance_level_script(official_instances, ours) -> None:
    res = ours["instance"]["cityscapes"]
    _assert_instance_equal(res, official_instances)
    finite = [v["ap"] for v in res["classes"].values() if not math.isnan(v["ap"])]
    assert len(finite) >= 3 and 0.05 < res["AP"] < 0.95 and res["AP50"] > res["AP"]


def test_overlapping_masks_with_duplicate_detections_equal_the_official_script(data) -> None:
    rng = np.random.default_rng(9)
    out = data.root / "official_masks"
    (out / "masks").mkdir(parents=True)
    ev = InstanceEvaluator()
    txts = []
    for stem, fr in zip(data.stems[:3], data.frames[:3]):
        masks, labels, scores = [], [], []
        for v in np.unique(fr.instance_ids):
            if v < 1000 or v // 1000 == 29:
                continue
            m = fr.instance_ids == v
            masks += [m, cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)]  # a duplicate
            labels += [int(v // 1000)] * 2
            scores += [float(rng.random()), float(rng.random())]
        masks.append(np.ones_like(masks[0]))  # one mask over everything, overlapping all others
        labels.append(26)
        scores.append(0.5)
        lines = []
        for j, (m, lab, s) in enumerate(zip(masks, labels, scores)):
            cv2.imwrite(str(out / "masks" / f"{stem}_{j}.png"), m.astype(np.uint8) * 255)
            lines.append(f"masks/{stem}_{j}.png {lab} {s!r}\n")
        (out / f"{stem}.txt").write_text("".join(lines))
        txts.append(out / f"{stem}.txt")
        ev.add_masks(fr.instance_ids, masks, labels, scores)
    off = official_instance_level(txts, data.gt_instances[:3], out, data.root / "inst_masks")
    _assert_instance_equal(ev.result(), off)


def test_official_ap_fails_where_all_predictions_are_ignored_and_ours_reports_zero(tmp_path: Path) -> None:
    gt = np.full((64, 64), 7, np.uint16)
    gt[10:30, 10:30] = 26001  # one car, 400 px
    gt[40:60, 40:60] = 0  # void
    lab = np.where(gt >= 1000, 26, gt).astype(np.uint8)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / "x_000000_000000_gtFine_instanceIds.png"), gt)
    cv2.imwrite(str(gt_dir / "x_000000_000000_gtFine_labelIds.png"), lab)
    imap = np.zeros_like(gt)
    imap[41:59, 41:59] = 26001  # a car entirely on void: ignored
    txt = write_instance_predictions(tmp_path / "pred", "x_000000_000000", imap, {26001: 0.9})
    with pytest.raises(IndexError):
        official_instance_level(
            [txt], [gt_dir / "x_000000_000000_gtFine_instanceIds.png"], tmp_path / "pred", tmp_path / "w"
        )
    ev = InstanceEvaluator()
    ev.add(gt, imap, {26001: 0.9})
    assert ev.result()["classes"]["car"]["ap"] == 0.0


# --------------------------------------------------------------------------------------
# panoptic


def test_our_panoptic_ground_truth_conversion_equals_create_panoptic_imgs(data, official_panoptic) -> None:
    mine = data.root / "pq_mine" / "gt.json"
    write_panoptic_json(
        mine, [(s, *gt_panoptic_segments(p)) for s, p in zip(data.stems, data.gt_instances)], ground_truth=True
    )
    assert json.loads(mine.read_text()) == json.loads(official_panoptic.gt_json.read_text())
    for s in data.stems:
        a = cv2.imread(str(mine.with_suffix("") / f"{s}_gtFine_panoptic.png"))
        b = cv2.imread(str(official_panoptic.gt_json.with_suffix("") / f"{s}_gtFine_panoptic.png"))
        assert np.array_equal(a, b)


def test_panoptic_quality_equals_the_official_panoptic_script(data, official_panoptic, ours) -> None:
    off, pan = official_panoptic.result, ours["panoptic"]
    for group in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert same(pan[group][k], off[group][k]), (group, k)
        assert pan[group]["n"] == off[group]["n"]
    names = {lab.id: lab.name for lab in cs_labels.labels}
    assert len(off["per_class"]) == len(pan["per_class"]) == 19
    for cid, v in off["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert same(pan["per_class"][names[int(cid)]][k], v[k]), (names[int(cid)], k)
    assert 0.1 < pan["All"]["pq"] < 0.95 and pan["Things"]["n"] >= 3


def test_panoptic_segments_from_arrays_equal_those_from_files(data, ours) -> None:
    ev = PanopticEvaluator()
    for fr, p in zip(data.frames, data.preds):
        ev.add(fr.instance_ids, p[3])
    assert ev.result()["All"] == ours["panoptic"]["All"]


# --------------------------------------------------------------------------------------
# COCO


def test_coco_mask_ap_of_a_perfect_prediction_is_one(data) -> None:
    gt = coco_ground_truth(zip(data.stems, data.gt_instances))
    frames = []
    for s, fr in zip(data.stems, data.frames):
        inst = fr.instance_ids
        imap = np.where((inst >= 1000) & (inst // 1000 != 29), inst, 0).astype(np.uint16)
        frames.append((s, imap, {int(v): 1.0 for v in np.unique(imap) if v}))
    res = coco_mask_ap(gt, coco_predictions(gt, frames))
    assert res["AP"] == 1.0 and res["AP50"] == 1.0 and res["AP75"] == 1.0
    assert all(v == pytest.approx(1.0, abs=1e-12) or math.isnan(v) for v in res["classes"].values())
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 3  # the car group and two person groups


def test_coco_mask_ap_with_one_of_four_objects_missed_has_the_known_recall_and_ap() -> None:
    gt = np.full((100, 200), 7, np.uint16)
    for k in range(4):
        gt[20:60, 10 + 45 * k : 40 + 45 * k] = 26001 + k
    imap = np.where(gt >= 26002, gt, 0).astype(np.uint16)  # car 26001 missed
    coco_gt = coco_ground_truth([("a_000000_000000", gt)])
    scores = {26002: 0.9, 26003: 0.8, 26004: 0.7}
    res = coco_mask_ap(coco_gt, coco_predictions(coco_gt, [("a_000000_000000", imap, scores)]))
    recall_thresholds = np.linspace(0.0, 1.0, 101)
    assert res["AR100"] == pytest.approx(0.75, abs=1e-12)
    assert res["AP"] == pytest.approx(np.mean(recall_thresholds <= 0.75), abs=1e-12)  # 76 / 101
    assert res["AP"] == pytest.approx(76 / 101, abs=1e-12)
    empty = coco_mask_ap(coco_gt, [])
    assert empty["AP"] == 0.0


def test_evaluate_paths_reports_coco_ap_equal_to_pycocotools_on_the_written_json(data, ours) -> None:
    gt = coco_ground_truth(zip(data.stems, data.gt_instances))
    preds = coco_predictions(gt, [(s, p[1], p[2]) for s, p in zip(data.stems, data.preds)])
    json.dumps(gt), json.dumps(preds)  # plain JSON
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = json.loads(json.dumps(gt))
        cg.createIndex()
        e = COCOeval(cg, cg.loadRes(json.loads(json.dumps(preds))), "segm")
        e.evaluate(), e.accumulate(), e.summarize()
    assert [ours["instance"]["coco"][k] for k in ("AP", "AP50", "AP75")] == [float(v) for v in e.stats[:3]]
    assert 0.05 < ours["instance"]["coco"]["AP"] < 0.95


# --------------------------------------------------------------------------------------
# evaluate_paths / CLI


def test_evaluate_paths_writes_json_with_nan_as_null(data, ours) -> None:
    saved = json.loads((data.root / "ours.json").read_text())
    assert saved["frames"] == N_FRAMES
    assert set(saved) >= {"semantic", "instance", "panoptic"}
    assert saved["semantic"]["mIoU"] == ours["semantic"]["mIoU"]
    assert None in [v["iou"] for v in saved["semantic"]["categories"].values()]  # void: NaN -> null


def test_evaluate_paths_computes_only_what_the_predictions_allow(data, tmp_path: Path) -> None:
    for p in data.classes:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    res = evaluate_paths(tmp_path, data.gt_root, None, out=None)
    assert "semantic" in res and "instance" not in res and "panoptic" not in res


def test_main_eval_prints_a_table_and_returns_zero(data, tmp_path: Path, capsys) -> None:
    assert main_eval(str(data.pred_root), str(data.gt_root), str(tmp_path / "r.json")) == 0
    text = capsys.readouterr().out
    for word in ("semantic", "iIoU", "instance (Cityscapes)", "COCO mask AP", "panoptic", "Things", "pixel accuracy"):
        assert word in text
    assert (tmp_path / "r.json").is_file()


def _copy_pred(data, dst: Path, skip: str = "") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(data.pred_root.rglob("*")):
        if p.is_file() and not (skip and p.name.endswith(skip) and data.stems[-1] in p.name):
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing classes", "lack _classes.png"),
        ("instances without scores", "no score"),
        ("scores file missing", "lack _instances.json"),
        ("extra prediction", "has no ground truth"),
        ("wrong size", "differ in size"),
        ("empty folder", "no predictions"),
        ("no ground truth", "does not exist"),
    ],
)
def test_missing_or_mismatching_files_raise_a_one_line_error(data, tmp_path: Path, case: str, pattern: str) -> None:
    pred, gt = tmp_path / "pred", data.gt_root
    last = data.stems[-1]
    if case == "missing classes":
        _copy_pred(data, pred, "_classes.png")
    elif case == "instances without scores":
        _copy_pred(data, pred)
        (pred / f"{last}_instances.json").write_text("{}")
    elif case == "scores file missing":
        _copy_pred(data, pred, "_instances.json")
    elif case == "extra prediction":
        _copy_pred(data, pred)
        (pred / "synth_000000_000099_classes.png").write_bytes((pred / f"{last}_classes.png").read_bytes())
    elif case == "wrong size":
        _copy_pred(data, pred)
        cv2.imwrite(str(pred / f"{last}_classes.png"), np.zeros((H, W - 1), np.uint8))
    elif case == "empty folder":
        pred.mkdir()
    elif case == "no ground truth":
        _copy_pred(data, pred)
        gt = tmp_path / "nowhere"
    with pytest.raises(SegPerceptionError, match=pattern) as err:
        evaluate_paths(pred, gt, None, out=None)
    assert "\n" not in str(err.value)
