"""Tests of the procedural road-scene generator (seg_perception.synthetic)."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest

from seg_perception.synthetic import label_ids as syn
from seg_perception.synthetic.frames import SyntheticFrame, generate_drive, generate_frame
from seg_perception.synthetic.params import CONDITIONS, SceneParams
from seg_perception.synthetic.writers import write_cityscapes

W, H = 256, 128  # small frames keep the suite fast; the scene content does not depend on size


@pytest.fixture(scope="module")
def label_set():
    return syn.cityscapes_label_set()


@pytest.fixture(scope="module")
def frames() -> list[SyntheticFrame]:
    return [generate_frame(7, i, W, H) for i in range(12)]


def _ids(label_set, **kw):
    return {lab.id for lab in label_set.labels if all(getattr(lab, k) == v for k, v in kw.items()) and lab.id >= 0}


def test_the_same_seed_and_index_give_byte_identical_frames():
    a = generate_frame(3, 5, W, H)
    b = generate_frame(3, 5, W, H)
    assert a.condition == b.condition
    assert a.params == b.params
    for name in ("image", "label_ids", "instance_ids"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_a_different_seed_or_index_gives_a_different_frame():
    a = generate_frame(3, 5, W, H, condition="day")
    for other in (generate_frame(4, 5, W, H, condition="day"), generate_frame(3, 6, W, H, condition="day")):
        assert not np.array_equal(a.image, other.image)
        assert not np.array_equal(a.label_ids, other.label_ids)


def test_frames_have_the_documented_shapes_and_dtypes():
    f = generate_frame(0, 0)
    assert f.image.shape == (512, 1024, 3) and f.image.dtype == np.uint8
    assert f.label_ids.shape == (512, 1024) and f.label_ids.dtype == np.uint8
    assert f.instance_ids.shape == (512, 1024) and f.instance_ids.dtype == np.uint16
    assert f.condition in CONDITIONS and f.index == 0
    small = generate_frame(0, 0, 200, 100)
    assert small.image.shape == (100, 200, 3) and small.label_ids.shape == (100, 200)


def test_the_module_label_constants_are_the_cityscapes_label_ids(label_set):
    for name, const in [
        ("road", syn.ROAD),
        ("sidewalk", syn.SIDEWALK),
        ("building", syn.BUILDING),
        ("wall", syn.WALL),
        ("fence", syn.FENCE),
        ("pole", syn.POLE),
        ("traffic light", syn.TRAFFIC_LIGHT),
        ("traffic sign", syn.TRAFFIC_SIGN),
        ("vegetation", syn.VEGETATION),
        ("terrain", syn.TERRAIN),
        ("sky", syn.SKY),
        ("person", syn.PERSON),
        ("rider", syn.RIDER),
        ("car", syn.CAR),
        ("truck", syn.TRUCK),
        ("bus", syn.BUS),
        ("motorcycle", syn.MOTORCYCLE),
        ("bicycle", syn.BICYCLE),
    ]:
        assert label_set.by_name(name).id == const, name
    assert set(syn.THING_LABEL_IDS) <= _ids(label_set, has_instances=True)


def test_every_pixel_carries_a_valid_cityscapes_label_id(frames, label_set):
    valid = _ids(label_set)
    seen: set[int] = set()
    for f in frames:
        present = set(np.unique(f.label_ids).tolist())
        assert present <= valid, present - valid
        assert syn.UNLABELED not in present  # the generator paints every pixel
        seen |= present
    # the scene vocabulary shows up across a dozen frames
    for name in ("road", "sidewalk", "building", "pole", "traffic sign", "vegetation", "sky", "person", "car"):
        assert label_set.by_name(name).id in seen, name


def test_instance_ids_encode_label_id_times_1000_plus_k_for_thing_classes_only(frames, label_set):
    things = _ids(label_set, has_instances=True)
    for f in frames:
        inst = f.instance_ids.astype(np.int64)
        lab = f.label_ids.astype(np.int64)
        is_inst = inst >= 1000
        assert np.array_equal(inst[is_inst] // 1000, lab[is_inst])
        assert (inst[is_inst] % 1000 >= 1).all()
        assert set(np.unique(lab[is_inst]).tolist()) <= things
        # everything else (stuff) stores its label id, and thing pixels always have an instance
        assert np.array_equal(inst[~is_inst], lab[~is_inst])
        assert not np.isin(lab[~is_inst], list(things)).any()


def test_every_instance_has_a_plausible_area(frames):
    n_instances = 0
    for f in frames:
        for iid, area in f.instances.items():
            ys, xs = np.nonzero(f.instance_ids == iid)
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert 1 <= area <= 0.5 * H * W, (f.index, iid, area)
            assert area <= box
            n_instances += 1
    assert n_instances >= 3 * len(frames)  # traffic and pedestrians are common


def test_cars_are_drawn_smaller_the_farther_away_they_stand():
    # In a long-lens frame the nearest car ahead is far larger than the farthest visible one,
    # and cars that appear higher in the image (closer to the horizon) are smaller.
    tops, sizes = [], []
    for i in range(6):
        f = generate_frame(11, i, 512, 256, condition="day")
        for iid, area in f.instances.items():
            if iid // 1000 != syn.CAR or area < 20:
                continue
            ys, _ = np.nonzero(f.instance_ids == iid)
            tops.append(ys.max())  # the lowest pixel: the contact with the ground
            sizes.append(area)
    assert len(sizes) >= 10
    rho = np.corrcoef(np.argsort(np.argsort(tops)), np.argsort(np.argsort(sizes)))[0, 1]
    assert rho > 0.5  # lower in the image (nearer) means bigger


def test_the_train_ids_property_applies_the_label_set_lut(frames, label_set):
    lut = label_set.label_to_train_id()
    for f in frames[:4]:
        t = f.train_ids
        assert t.dtype == np.uint8 and t.shape == f.label_ids.shape
        assert np.array_equal(t, lut[f.label_ids])
        assert np.array_equal(t == 255, ~np.isin(f.label_ids, [c.id for c in label_set.classes]))


def test_scene_parameters_stay_in_the_documented_ranges(frames):
    for f in frames:
        p = f.params
        assert isinstance(p, SceneParams) and p.condition == f.condition
        assert 1.2 <= p.camera_height_m <= 1.8
        assert -3.0 <= p.pitch_deg <= 3.0
        assert 60.0 <= p.hfov_deg <= 100.0


def test_a_missing_condition_is_drawn_from_the_seed():
    drawn = [generate_frame(5, i, 32, 16).condition for i in range(40)]
    assert set(drawn) <= set(CONDITIONS)
    assert len(set(drawn)) >= 4
    assert drawn == [generate_frame(5, i, 32, 16).condition for i in range(40)]


def test_an_unknown_condition_is_rejected():
    with pytest.raises(ValueError, match="unknown condition"):
        generate_frame(0, 0, W, H, condition="sandstorm")
    with pytest.raises(ValueError):
        next(generate_drive(0, 2, W, H, condition="sandstorm"))


@pytest.mark.parametrize("condition", [c for c in CONDITIONS if c != "day"])
def test_each_condition_changes_the_image_but_not_the_ground_truth(condition):
    day = generate_frame(21, 2, W, H, condition="day")
    f = generate_frame(21, 2, W, H, condition=condition)
    assert f.condition == condition
    assert np.array_equal(f.label_ids, day.label_ids)
    assert np.array_equal(f.instance_ids, day.instance_ids)
    diff = np.abs(f.image.astype(np.int16) - day.image.astype(np.int16)).mean()
    assert diff > 3.0, diff


def test_night_is_dark_and_overexposure_is_bright():
    day = generate_frame(21, 2, W, H, condition="day").image.mean()
    assert generate_frame(21, 2, W, H, condition="night").image.mean() < 0.45 * day
    assert generate_frame(21, 2, W, H, condition="underexposed").image.mean() < 0.5 * day
    assert generate_frame(21, 2, W, H, condition="overexposed").image.mean() > 1.3 * day


def test_write_cityscapes_writes_the_layout_and_the_pngs_read_back_exactly(tmp_path):
    frames = [generate_frame(9, i, W, H) for i in (0, 3)]
    paths = write_cityscapes(tmp_path, frames, city="synth", split="val")
    assert [p.name for p in paths] == ["synth_000000_000000_leftImg8bit.png", "synth_000000_000003_leftImg8bit.png"]
    for f, p in zip(frames, paths):
        stem = f"synth_000000_{f.index:06d}"
        assert p == tmp_path / "leftImg8bit" / "val" / "synth" / f"{stem}_leftImg8bit.png"
        gt = tmp_path / "gtFine" / "val" / "synth"
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), f.image)
        lab = cv2.imread(str(gt / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        assert lab.dtype == np.uint8 and np.array_equal(lab, f.label_ids)
        inst = cv2.imread(str(gt / f"{stem}_gtFine_instanceIds.png"), cv2.IMREAD_UNCHANGED)
        assert inst.dtype == np.uint16 and np.array_equal(inst, f.instance_ids)
        assert inst.max() >= 1000  # 16-bit values survive the round trip
        color = cv2.imread(str(gt / f"{stem}_gtFine_color.png"), cv2.IMREAD_UNCHANGED)
        assert color.shape == (H, W, 3)
        assert np.array_equal(cv2.cvtColor(color, cv2.COLOR_BGR2RGB), syn.colorize_label_ids(f.label_ids))
    conditions = json.loads((tmp_path / "conditions.json").read_text())
    assert conditions == {f"synth_000000_{f.index:06d}": f.condition for f in frames}
    # a second call merges into conditions.json
    write_cityscapes(tmp_path, [generate_frame(9, 7, W, H)], city="synth", split="train")
    assert len(json.loads((tmp_path / "conditions.json").read_text())) == 3


def test_drive_frames_are_coherent_like_video():
    drive = list(generate_drive(2, 10, W, H, condition="day"))
    assert [f.index for f in drive] == list(range(10))
    assert all(f.condition == "day" for f in drive)

    def diff(a, b):
        return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()

    consecutive = np.mean([diff(a.image, b.image) for a, b in itertools.pairwise(drive)])
    others = [generate_frame(2, i, W, H, condition="day").image for i in range(4)]
    unrelated = np.mean([diff(a.image, o) for a in drive[:4] for o in others])
    assert consecutive < 0.5 * unrelated, (consecutive, unrelated)
    label_agree = np.mean([(a.label_ids == b.label_ids).mean() for a, b in itertools.pairwise(drive)])
    assert label_agree > 0.8
    # objects keep their identity: most instances of a frame are still there in the next one
    kept = [len(set(a.instances) & set(b.instances)) / max(1, len(a.instances)) for a, b in itertools.pairwise(drive)]
    assert np.mean(kept) > 0.7
    # the camera moves forward: dashes and objects stream towards it (the frames are not static)
    assert min(diff(a.image, b.image) for a, b in itertools.pairwise(drive)) > 0.5


def test_drives_are_deterministic_and_a_longer_drive_extends_a_shorter_one():
    short = list(generate_drive(8, 3, W, H))
    long = list(generate_drive(8, 5, W, H))
    assert short[0].condition == long[0].condition
    for a, b in zip(short, long):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.instance_ids, b.instance_ids)


def test_the_ground_plane_is_below_the_horizon_and_the_sky_above(frames):
    for f in frames:
        bottom = f.label_ids[-1]
        top = f.label_ids[0]
        ground = np.isin(bottom, [syn.ROAD, syn.SIDEWALK, syn.TERRAIN, *syn.THING_LABEL_IDS])
        assert ground.mean() > 0.7
        assert not np.isin(top, [syn.ROAD, syn.SIDEWALK]).any()
