"""Instance segmentation core: instance maps from detections, panoptic fusion, Mask R-CNN
factories and checkpoints. No ROS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seg_perception.errors import CheckpointError, ConfigError
from seg_perception.inference.base import Detections
from seg_perception.io.image import ColorOrder, DecodedImage
from seg_perception.labels import Label, load_label_set
from seg_perception.models.instance import (
    INSTANCE_ARCHITECTURES,
    NEVER_LOGIT,
    build_instance_model,
    coco_category_names,
    instance_class_names,
    load_coco_mapping,
    save_instance_checkpoint,
)
from seg_perception.pipeline.instance import (
    InstanceResult,
    InstanceSegmenter,
    check_instance_encoding,
    instances_from_detections,
)
from seg_perception.pipeline.overlays import draw_instance_overlay
from seg_perception.pipeline.panoptic import fuse_panoptic

LABELS = load_label_set("cityscapes")
THINGS = LABELS.thing_classes  # model label j -> THINGS[j - 1]
PERSON, RIDER, CAR, TRUCK = 1, 2, 3, 4  # model class indices (background = 0)
TRAIN_ID = {c.name: c.train_id for c in LABELS.classes}
MOBILENET = "maskrcnn_mobilenet_v3_large_fpn"
RESNET = "maskrcnn_resnet50_fpn_v2"
SMALL = (256, 512)


def rect(size: tuple[int, int], y0: int, y1: int, x0: int, x1: int, p: float = 0.9) -> np.ndarray:
    m = np.zeros(size, np.float32)
    m[y0:y1, x0:x1] = p
    return m


def detections(*dets: tuple[int, float, tuple[int, int, int, int]], size: tuple[int, int] = (40, 60)) -> dict:
    """(label, score, (y0, y1, x0, x1)) -> boxes/labels/scores/pasted masks with box = mask rect."""
    boxes = np.array([[x0, y0, x1, y1] for _, _, (y0, y1, x0, x1) in dets], np.float32).reshape(-1, 4)
    return {
        "boxes": boxes,
        "labels": np.array([d[0] for d in dets], np.int64),
        "scores": np.array([d[1] for d in dets], np.float32),
        "masks": np.stack([rect(size, *d[2]) for d in dets])[:, None] if dets else np.zeros((0, 1, *size), np.float32),
    }


def segment(dets: dict, **kw) -> InstanceResult:
    return instances_from_detections(dets["boxes"], dets["labels"], dets["scores"], dets["masks"], THINGS, **kw)


# --------------------------------------------------------------------------------------------
# instance maps from detections
# --------------------------------------------------------------------------------------------


def test_overlapping_instances_give_each_shared_pixel_to_the_higher_score() -> None:
    res = segment(detections((CAR, 0.6, (0, 20, 0, 30)), (PERSON, 0.9, (10, 30, 20, 40))))
    m = res.instance_map
    assert m.dtype == np.uint16 and m.shape == (40, 60)
    assert m[15, 25] == 24001  # shared pixel: the person (0.9) wins
    assert m[5, 5] == 26001 and m[25, 35] == 24001 and m[35, 50] == 0
    assert [r.value for r in res.instances] == [24001, 26001]  # by descending score


def test_equal_scores_give_the_shared_pixels_to_the_detection_listed_first() -> None:
    res = segment(detections((CAR, 0.7, (0, 20, 0, 30)), (CAR, 0.7, (10, 30, 20, 40))))
    assert res.instance_map[15, 25] == 26001
    assert [(r.value, r.bbox) for r in res.instances] == [(26001, (0, 0, 30, 20)), (26002, (20, 10, 40, 30))]


def test_k_numbers_instances_per_class_by_descending_score() -> None:
    res = segment(
        detections(
            (CAR, 0.55, (0, 5, 0, 5)),
            (PERSON, 0.8, (0, 5, 10, 15)),
            (CAR, 0.95, (10, 15, 0, 5)),
            (PERSON, 0.6, (10, 15, 10, 15)),
            (CAR, 0.7, (20, 25, 0, 5)),
        )
    )
    by_value = {r.value: r.score for r in res.instances}
    assert by_value == pytest.approx({26001: 0.95, 26002: 0.7, 26003: 0.55, 24001: 0.8, 24002: 0.6})
    assert res.instance_map[12, 2] == 26001 and res.instance_map[2, 2] == 26003 and res.instance_map[12, 12] == 24002
    assert [r.score for r in res.instances] == sorted((r.score for r in res.instances), reverse=True)
    first = res.instances[0]
    assert (first.label_id, first.train_id, first.name, first.k) == (26, TRAIN_ID["car"], "car", 1)


def test_area_counts_pixels_after_overlap_resolution_and_hidden_instances_are_dropped() -> None:
    res = segment(
        detections(
            (CAR, 0.9, (0, 20, 0, 20)),  # 400 px
            (CAR, 0.8, (10, 30, 10, 30)),  # 400 px, 100 of them taken by the first
            (CAR, 0.7, (2, 8, 2, 8)),  # entirely under the first: no pixel left
        )
    )
    assert [(r.value, r.area) for r in res.instances] == [(26001, 400), (26002, 300)]
    assert sorted(np.unique(res.instance_map).tolist()) == [0, 26001, 26002]
    assert all(int((res.instance_map == r.value).sum()) == r.area for r in res.instances)


def test_zero_detections_give_an_all_zero_map() -> None:
    pasted = segment(detections())
    assert pasted.instances == [] and pasted.instance_map.shape == (40, 60)
    assert pasted.instance_map.dtype == np.uint16 and not pasted.instance_map.any()
    roi = instances_from_detections(
        np.zeros((0, 4)),
        np.zeros(0),
        np.zeros(0),
        np.zeros((0, 1, 28, 28)),
        THINGS,
        image_size=(30, 50),
        source_size=(16, 32),
        roi_masks=True,
    )
    assert roi.instances == [] and roi.instance_map.shape == (30, 50) and not roi.instance_map.any()


def test_detections_below_the_score_threshold_or_of_unknown_class_are_dropped() -> None:
    res = segment(
        detections(
            (CAR, 0.49, (0, 10, 0, 10)),
            (0, 0.99, (0, 10, 20, 30)),  # background
            (99, 0.99, (20, 30, 0, 10)),  # not a model class
            (CAR, 0.5, (20, 30, 20, 30)),  # exactly at the threshold: kept
        ),
        score_threshold=0.5,
    )
    assert [r.value for r in res.instances] == [26001]
    assert res.instance_map[25, 25] == 26001 and res.instance_map[5, 5] == 0


def test_more_detections_than_max_instances_keep_the_best_scores() -> None:
    scores = [0.55, 0.9, 0.6, 0.95, 0.7, 0.8]
    dets = detections(*((CAR, s, (0, 5, 6 * i, 6 * i + 5)) for i, s in enumerate(scores)))
    res = segment(dets, max_instances=3)
    assert [r.score for r in res.instances] == pytest.approx([0.95, 0.9, 0.8])
    assert [r.value for r in res.instances] == [26001, 26002, 26003]
    assert res.instance_map[2, 6 * 3] == 26001 and res.instance_map[2, 0] == 0  # 0.95 kept, 0.55 not


def test_an_instance_touching_the_border_is_clipped_to_the_frame() -> None:
    # pasted mask on the left and bottom edge, its detector box reaching past the frame
    dets = detections((PERSON, 0.9, (25, 40, 0, 10)))
    dets["boxes"][0] = [-4.0, 25.0, 10.0, 47.0]
    res = segment(dets)
    (rec,) = res.instances
    assert rec.bbox == (0.0, 25.0, 10.0, 40.0) and rec.area == 150
    assert res.instance_map[39, 0] == 24001
    # roi mask whose box sticks out of the right edge: pasted only inside the frame
    roi = instances_from_detections(
        torch.tensor([[40.0, 5.0, 80.0, 25.0]]),
        torch.tensor([CAR]),
        torch.tensor([0.9]),
        torch.ones(1, 1, 28, 28),
        THINGS,
        image_size=(40, 60),
        roi_masks=True,
    )
    (rec,) = roi.instances
    assert rec.bbox == (40.0, 5.0, 60.0, 25.0)
    assert roi.instance_map[15, 59] == 26001 and not roi.instance_map[:, :38].any()
    assert rec.area == int((roi.instance_map == 26001).sum()) > 0


def test_bbox_and_masks_at_model_resolution_are_scaled_to_the_input_frame() -> None:
    dets = detections((CAR, 0.9, (4, 12, 8, 24)), size=(16, 32))  # model 16x32, frame 64x128
    res = segment(dets, image_size=(64, 128))
    (rec,) = res.instances
    assert res.instance_map.shape == (64, 128)
    assert rec.bbox == (32.0, 16.0, 96.0, 48.0)
    # bilinear upsampling of a hard-edged mask: the box's edges are on, its corners round off
    m = res.instance_map
    assert m[18:46, 34:94].all() and m[16, 64] and m[47, 64] and m[32, 32] and m[32, 95]
    assert not res.instance_map[:16].any() and not res.instance_map[:, 96:].any()
    assert 64 * 32 - 4 * 3 <= rec.area == int((res.instance_map > 0).sum()) < 64 * 32


def test_roi_masks_paste_pixel_for_pixel_like_torchvision() -> None:
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    gen = torch.Generator().manual_seed(0)
    n, model_size, frame = 6, (32, 64), (90, 170)
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([50.0, 24.0]) - 4
    wh = torch.rand(n, 2, generator=gen) * torch.tensor([30.0, 16.0]) + 1
    boxes = torch.cat([xy, xy + wh], 1)
    masks = torch.rand(n, 1, 28, 28, generator=gen)
    scores = torch.linspace(0.95, 0.6, n)
    labels = torch.tensor([CAR, PERSON, CAR, TRUCK, RIDER, CAR])
    roi = instances_from_detections(
        boxes, labels, scores, masks, THINGS, image_size=frame, source_size=model_size, roi_masks=True
    )
    transform = GeneralizedRCNNTransform(32, 64, [0.0] * 3, [1.0] * 3).eval()
    (ref,) = transform.postprocess(
        [{"boxes": boxes.clone(), "masks": masks.clone(), "labels": labels, "scores": scores}], [model_size], [frame]
    )
    pasted = instances_from_detections(ref["boxes"], labels, scores, ref["masks"], THINGS)
    assert np.array_equal(roi.instance_map, pasted.instance_map)
    assert roi.instances == pasted.instances and len(roi.instances) >= 4


def test_classes_that_do_not_fit_the_uint16_encoding_are_rejected() -> None:
    check_instance_encoding(THINGS, 999)  # Cityscapes: bicycle 33 * 1000 + 999 fits
    big = Label("zeppelin", 66, 0, "vehicle", True, False, (0, 0, 0))  # 66 * 1000 > 65535
    unlabeled = Label("blob", 0, 0, "void", True, False, (0, 0, 0))  # k alone would read as a label id
    edge = Label("edge", 65, 0, "vehicle", True, False, (0, 0, 0))  # 65000 + 535 = 65535 fits, + 536 not
    check_instance_encoding([edge], 535)
    for classes, max_instances in (([big], 1), ([unlabeled], 1), ([edge], 536), (THINGS, 1000), (THINGS, 0)):
        with pytest.raises(ConfigError):
            check_instance_encoding(classes, max_instances)
    with pytest.raises(ConfigError, match="zeppelin"):
        instances_from_detections(np.zeros((0, 4)), [], [], np.zeros((0, 1, 4, 4)), [big])


def test_the_segmenter_refuses_a_max_instances_the_encoding_cannot_hold(mobilenet_small) -> None:
    with pytest.raises(ConfigError, match="at most 999"):
        InstanceSegmenter(mobilenet_small, LABELS, SMALL, max_instances=1000)


# --------------------------------------------------------------------------------------------
# panoptic fusion
# --------------------------------------------------------------------------------------------


def _panoptic_case() -> tuple[np.ndarray, InstanceResult]:
    """Class map: road left half, car right half, one ignore column; a strong car instance
    (0.9) and a weak person instance (0.3), both straddling the road/car border."""
    class_map = np.full((10, 20), TRAIN_ID["road"], np.uint8)
    class_map[:, 10:] = TRAIN_ID["car"]
    class_map[:, 0] = 255
    res = segment(
        detections((CAR, 0.9, (0, 4, 6, 14)), (PERSON, 0.3, (6, 10, 0, 14)), size=(10, 20)), score_threshold=0.2
    )
    return class_map, res


def test_panoptic_instances_win_on_thing_pixels_and_confident_ones_also_on_stuff() -> None:
    class_map, inst = _panoptic_case()
    pan = fuse_panoptic(class_map, inst, LABELS)
    assert pan.dtype == np.uint16 and pan.shape == (10, 20)
    assert (pan[0:4, 6:14] == 26001).all()  # 0.9 car: over road and over car pixels
    assert (pan[6:10, 10:14] == 24001).all()  # weak person over semantic car (a thing): wins
    assert (pan[6:10, 1:10] == 7).all()  # weak person over road: road keeps its label id
    assert (pan[6:10, 0] == 24001).all()  # ignore column makes no claim: the instance wins


def test_panoptic_uncovered_pixels_keep_their_semantic_label_id() -> None:
    class_map, inst = _panoptic_case()
    pan = fuse_panoptic(class_map, inst, LABELS)
    assert (pan[4:6, 14:] == 26).all()  # car pixels with no instance: plain label id (crowd)
    assert (pan[4:6, 1:6] == 7).all()  # road
    assert (pan[4:6, 0] == 0).all()  # ignore -> unlabeled


def test_panoptic_threshold_decides_which_instances_override_stuff() -> None:
    class_map, inst = _panoptic_case()
    strict = fuse_panoptic(class_map, inst, LABELS, instance_overrides_stuff_score=0.95)
    assert (strict[0:4, 6:10] == 7).all() and (strict[0:4, 10:14] == 26001).all()
    lax = fuse_panoptic(class_map, inst, LABELS, instance_overrides_stuff_score=0.0)
    assert np.array_equal(lax[inst.instance_map > 0], inst.instance_map[inst.instance_map > 0])


def test_panoptic_with_no_instances_is_the_label_id_map() -> None:
    class_map = np.random.default_rng(1).integers(0, 19, (12, 16)).astype(np.uint8)
    empty = InstanceResult(np.zeros((12, 16), np.uint16), [])
    pan = fuse_panoptic(class_map, empty, LABELS)
    assert np.array_equal(pan, LABELS.train_to_label_id()[class_map])
    with pytest.raises(ValueError):
        fuse_panoptic(class_map[:, :8], empty, LABELS)


# --------------------------------------------------------------------------------------------
# overlay
# --------------------------------------------------------------------------------------------


def test_overlay_blends_masks_and_draws_boxes_and_labels_without_touching_the_rest() -> None:
    rgb = np.full((60, 120, 3), 100, np.uint8)
    res = segment(detections((CAR, 0.9, (20, 50, 30, 90)), size=(60, 120)))
    palette = LABELS.palette()
    out = draw_instance_overlay(rgb, res, palette, alpha=0.5)
    assert out.shape == rgb.shape and (rgb == 100).all()
    expected = (palette[TRAIN_ID["car"]].astype(float) + 100) / 2
    assert np.abs(out[35, 60].astype(float) - expected).max() <= 1  # inside the mask
    assert (out[55:, :] == 100).all() and (out[:, :25] == 100).all()  # outside box and label
    assert (out[5:20, 30:90] != 100).any()  # the label above the box
    plain = draw_instance_overlay(rgb, res, palette, alpha=0.5, draw_boxes=False, draw_labels=False)
    assert (plain[:20] == 100).all()


# --------------------------------------------------------------------------------------------
# models, the segmenter, checkpoints
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet_small() -> torch.nn.Module:
    model, _ = build_instance_model(MOBILENET, 1 + len(THINGS), min_size=SMALL[0], max_size=SMALL[1])
    return model


def test_the_segmenter_maps_each_frames_detections_to_its_own_resolution(mobilenet_small, monkeypatch) -> None:
    seg = InstanceSegmenter(mobilenet_small, LABELS, SMALL, score_threshold=0.5)
    det = Detections(
        torch.tensor([[128.0, 64.0, 256.0, 192.0], [0.0, 0.0, 64.0, 64.0]]),
        torch.tensor([CAR, PERSON]),
        torch.tensor([0.8, 0.4]),  # the person is under the threshold
        torch.ones(2, 1, 28, 28),
    )
    monkeypatch.setattr(seg, "detect", lambda batch: [det] * len(batch))
    frames = [
        DecodedImage(np.zeros((1024, 2048, 3), np.uint8), ColorOrder.BGR),
        DecodedImage(np.zeros((128, 256), np.uint8), ColorOrder.MONO),
    ]
    big, small = seg.segment(frames)
    assert big.instance_map.shape == (1024, 2048) and small.instance_map.shape == (128, 256)
    assert [r.bbox for r in big.instances] == [(512.0, 256.0, 1024.0, 768.0)]
    assert [r.bbox for r in small.instances] == [(64.0, 32.0, 128.0, 96.0)]
    assert big.instance_map[512, 768] == 26001 and small.instance_map[64, 96] == 26001
    assert seg.segment([]) == []


def test_a_mono16_frame_is_segmented_as_its_8_bit_grey(mobilenet_small) -> None:
    """An IR camera's frames (mono16) run, as ``value // 257`` in 8 bits (rosbags-image's
    mono8 of them), beside another camera's in one batch."""
    seg = InstanceSegmenter(mobilenet_small, LABELS, SMALL, score_threshold=0.05, mask_threshold=0.3)
    wide = np.random.default_rng(5).integers(0, 65536, (120, 160), np.uint16)
    grey = (wide // 257).astype(np.uint8)
    rgb = DecodedImage(np.random.default_rng(6).integers(0, 256, (96, 128, 3), np.uint8), ColorOrder.RGB)
    mono16, beside = seg.segment([DecodedImage(wide, ColorOrder.MONO), rgb])
    expected, _ = seg.segment([DecodedImage(grey, ColorOrder.MONO), rgb])  # the same batch: the same arithmetic
    assert mono16.instances and np.array_equal(mono16.instance_map, expected.instance_map)
    assert [r.score for r in mono16.instances] == [r.score for r in expected.instances]
    assert beside.instance_map.shape == (96, 128)


@pytest.mark.parametrize("arch", sorted(INSTANCE_ARCHITECTURES))
def test_both_architectures_build_and_segment_a_batch_of_frames_in_eval_mode(arch: str, mobilenet_small) -> None:
    if arch == MOBILENET:
        model = mobilenet_small
    else:  # fewer proposals keep the ResNet's 4-conv box head fast enough for the unit suite
        model, _ = build_instance_model(arch, 9, min_size=SMALL[0], max_size=SMALL[1], rpn_post_nms_top_n_test=50)
    # thresholds 0: an untrained model (scores ~1/9, mask probabilities ~0.5) still reaches the
    # mask head and the pasting
    seg = InstanceSegmenter(model, LABELS, SMALL, score_threshold=0.0, mask_threshold=0.0, max_instances=5)
    rng = np.random.default_rng(0)
    frames = [
        DecodedImage(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8), ColorOrder.RGB),
        DecodedImage(rng.integers(0, 256, (256, 512, 3), dtype=np.uint8), ColorOrder.BGR),
    ]
    results = seg.segment(frames)
    assert [r.instance_map.shape for r in results] == [(300, 500), (256, 512)]
    for res in results:
        assert res.instance_map.dtype == np.uint16 and 1 <= len(res.instances) <= 5
        values = {r.value for r in res.instances}
        assert set(np.unique(res.instance_map).tolist()) - {0} == values
        assert all(r.label_id in {c.id for c in THINGS} and r.value // 1000 == r.label_id for r in res.instances)
    again = seg.segment(frames)
    assert all(np.array_equal(a.instance_map, b.instance_map) for a, b in zip(results, again))
    assert not model.training


def _train_one_step(arch: str, size: tuple[int, int]) -> None:
    model, _ = build_instance_model(
        arch,
        9,
        min_size=size[0],
        max_size=size[1],
        seed=3,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
    )
    model.train()
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, *size, generator=gen) for _ in range(2)]
    targets = []
    for i in range(2):
        masks = torch.zeros(2, *size, dtype=torch.uint8)
        masks[0, 10:60, 20 + i : 90] = 1
        masks[1, 70:120, 150:240] = 1
        boxes = torch.tensor([[20.0 + i, 10.0, 90.0, 60.0], [150.0, 70.0, 240.0, 120.0]])
        targets.append({"boxes": boxes, "labels": torch.tensor([CAR, PERSON]), "masks": masks})
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.01)
    losses = model(images, targets)
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    assert params[0].grad is not None  # the first backbone layer trains too (nothing frozen)


def test_the_mobilenet_variant_trains_one_step_with_synthetic_targets() -> None:
    _train_one_step(MOBILENET, (128, 256))


@pytest.mark.slow
def test_the_resnet50_variant_trains_one_step_with_synthetic_targets() -> None:
    _train_one_step(RESNET, (128, 256))


def test_a_coco_layout_checkpoint_loads_with_the_mapping_and_sliced_rows_equal_the_source(tmp_path: Path) -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    torch.manual_seed(5)
    coco = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91)
    src = coco.state_dict()
    path = tmp_path / "coco.pth"
    torch.save(src, path)
    names = instance_class_names(LABELS)
    mapping = load_coco_mapping()
    model, _ = build_instance_model(RESNET, len(names), path, coco_mapping=mapping, class_names=names)
    got = model.state_dict()
    categories = coco_category_names()
    for ours, name in enumerate(names):
        coco_name = "__background__" if ours == 0 else next((k for k, v in mapping.items() if v == name), None)
        cls_w = got["roi_heads.box_predictor.cls_score.weight"][ours]
        cls_b = got["roi_heads.box_predictor.cls_score.bias"][ours]
        box_w = got["roi_heads.box_predictor.bbox_pred.weight"][4 * ours : 4 * ours + 4]
        mask_w = got["roi_heads.mask_predictor.mask_fcn_logits.weight"][ours]
        if coco_name is None:  # rider: never reported
            assert name == "rider" and cls_b.item() == NEVER_LOGIT and not cls_w.any() and not box_w.any()
            continue
        r = categories.index(coco_name)
        assert torch.equal(cls_w, src["roi_heads.box_predictor.cls_score.weight"][r])
        assert torch.equal(cls_b, src["roi_heads.box_predictor.cls_score.bias"][r])
        assert torch.equal(box_w, src["roi_heads.box_predictor.bbox_pred.weight"][4 * r : 4 * r + 4])
        assert torch.equal(
            got["roi_heads.box_predictor.bbox_pred.bias"][4 * ours : 4 * ours + 4],
            src["roi_heads.box_predictor.bbox_pred.bias"][4 * r : 4 * r + 4],
        )
        assert torch.equal(mask_w, src["roi_heads.mask_predictor.mask_fcn_logits.weight"][r])
        assert torch.equal(
            got["roi_heads.mask_predictor.mask_fcn_logits.bias"][ours],
            src["roi_heads.mask_predictor.mask_fcn_logits.bias"][r],
        )
    key = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(got[key], src[key])
    with pytest.raises(CheckpointError, match="COCO layout"):
        build_instance_model(RESNET, len(names), path, class_names=names)  # no mapping given


def test_a_coco_mapping_to_a_label_the_model_lacks_is_refused(tmp_path: Path) -> None:
    names = instance_class_names(LABELS)
    path = tmp_path / "unused.pth"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="dog"):
        build_instance_model(MOBILENET, 9, path, coco_mapping={"dog": "car", "cat": "car"}, class_names=names)
    with pytest.raises(ConfigError, match="wolf"):
        build_instance_model(MOBILENET, 9, path, coco_mapping={"dog": "wolf"}, class_names=names)


def test_our_own_checkpoint_round_trips_with_its_card(tmp_path: Path, mobilenet_small) -> None:
    names = instance_class_names(LABELS)
    path = save_instance_checkpoint(tmp_path / "mnv3.pth", mobilenet_small, MOBILENET, names, input_size=[256, 512])
    model, meta = build_instance_model(MOBILENET, 9, path, seed=99, min_size=256, max_size=512, class_names=names)
    assert meta["arch"] == MOBILENET and meta["classes"] == names and meta["input_size"] == [256, 512]
    ref = mobilenet_small.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="trained for classes"):
        build_instance_model(MOBILENET, 9, path, class_names=[names[0], *reversed(names[1:])])
    with pytest.raises(CheckpointError, match=MOBILENET):
        build_instance_model(RESNET, 9, path)


def test_a_checkpoint_that_does_not_fit_names_the_missing_and_unexpected_keys(tmp_path: Path, mobilenet_small) -> None:
    state = dict(mobilenet_small.state_dict())
    del state["roi_heads.mask_head.0.0.weight"]
    state["roi_heads.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        build_instance_model(MOBILENET, 9, path)
    msg = str(err.value)
    assert "missing keys roi_heads.mask_head.0.0.weight" in msg and "unexpected keys roi_heads.extra_head.weight" in msg
    assert str(path) in msg
