"""Training is reproducible from the seed and resumes to the same result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seg_perception.errors import SegPerceptionError
from seg_perception.labels import load_label_set
from seg_perception.models.semantic import build_semantic_model
from seg_perception.synthetic.frames import generate_frame
from seg_perception.synthetic.params import CONDITIONS
from seg_perception.training.card import model_card
from seg_perception.training.config import TrainConfig
from seg_perception.training.data import class_weights, instance_targets
from seg_perception.training.loop import train, transfer_backbone

pytestmark = pytest.mark.slow


def _tiny(out: Path, iterations: int = 4) -> TrainConfig:
    return TrainConfig(
        out=str(out),
        iterations=iterations,
        batch_size=2,
        height=64,
        width=128,
        checkpoint_every=2,
        eval_frames_per_condition=1,
        workers=0,
    )


def test_semantic_training_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = train(_tiny(tmp_path / "a"))
    assert train(_tiny(tmp_path / "b"), stop_after=2) is None  # interrupted after a checkpoint
    assert torch.load(tmp_path / "b" / "last.pth", weights_only=False)["iteration"] == 2
    resumed = train(_tiny(tmp_path / "b"))
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["meta"]["arch"] == "deeplabv3_mobilenet_v3_large" and b["meta"]["labels"] == "cityscapes"
    assert set(b["meta"]["metrics"]["per_condition"]) == set(CONDITIONS)
    card = model_card(b["meta"], ["seg-perception train ..."])
    assert "| **all** |" in card and "| traffic light |" in card and "seg-perception train ..." in card


def test_training_refuses_to_resume_a_run_with_another_configuration(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "c"), stop_after=1)
    with pytest.raises(SegPerceptionError, match="another configuration"):
        train(dataclasses.replace(_tiny(tmp_path / "c"), lr=1e-2))


def test_instance_targets_follow_the_instance_ids_image() -> None:
    labels = load_label_set()
    frame = generate_frame(3, 0, 256, 128, "day")
    targets = instance_targets(frame.instance_ids, labels)
    n = len(targets["labels"])
    assert targets["boxes"].shape == (n, 4) and targets["masks"].shape == (n, 128, 256)
    assert n > 0 and int(targets["labels"].min()) >= 1 and int(targets["labels"].max()) <= 8
    x0, y0, x1, y1 = targets["boxes"][0].tolist()
    ys, xs = torch.nonzero(targets["masks"][0], as_tuple=True)
    assert (x0, y0, x1, y1) == (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)


def test_enet_class_weights_favour_rare_classes_and_are_reproducible() -> None:
    labels = load_label_set()
    cfg = dataclasses.replace(_tiny(Path("unused")), class_weights="enet", seed=5)
    weights = dict(zip(labels.class_names, class_weights(cfg, labels, frames=8)))
    assert weights == dict(zip(labels.class_names, class_weights(cfg, labels, frames=8)))
    assert weights["road"] < weights["car"] < weights["pole"] < weights["traffic light"]
    assert weights["train"] == pytest.approx(1 / torch.log(torch.tensor(1.02)).item(), abs=1e-3)  # never seen
    assert class_weights(_tiny(Path("unused")), labels) is None
    with pytest.raises(SegPerceptionError, match="class weighting"):
        class_weights(dataclasses.replace(cfg, class_weights="median"), labels)


def test_instance_backbone_starts_from_a_semantic_checkpoint(tmp_path: Path) -> None:
    from seg_perception.models.instance import build_instance_model, instance_class_names

    labels = load_label_set()
    semantic, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", labels.num_classes, None, seed=7)
    torch.save({"model": semantic.state_dict()}, tmp_path / "semantic.pth")
    names = instance_class_names(labels)
    model, _ = build_instance_model("maskrcnn_mobilenet_v3_large_fpn", len(names), class_names=names)
    copied = transfer_backbone(model, tmp_path / "semantic.pth")
    assert copied == sum(1 for k in model.state_dict() if k.startswith("backbone.body."))
    src, dst = semantic.state_dict(), model.state_dict()
    assert all(
        torch.equal(src[k], dst["backbone.body." + k[len("backbone.") :]]) for k in src if k.startswith("backbone.")
    )
    resnet, _ = build_semantic_model("deeplabv3_resnet50", labels.num_classes, None, seed=7)
    torch.save({"model": resnet.state_dict()}, tmp_path / "resnet.pth")
    with pytest.raises(SegPerceptionError, match="backbone tensors fit"):
        transfer_backbone(model, tmp_path / "resnet.pth")


def test_instance_training_writes_a_card_with_metrics_per_condition(tmp_path: Path) -> None:
    semantic, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None, seed=1)
    torch.save({"model": semantic.state_dict()}, tmp_path / "semantic.pth")
    cfg = dataclasses.replace(
        _tiny(tmp_path / "inst", iterations=2),
        task="instance",
        model="maskrcnn_mobilenet_v3_large_fpn",
        batch_size=1,
        height=128,
        width=256,
        backbone_init=str(tmp_path / "semantic.pth"),
        rpn_train_proposals=200,
        roi_samples=64,
    )
    card = torch.load(train(cfg), weights_only=True)
    assert card["meta"]["classes"][0] == "__background__" and card["meta"]["input_size"] == [128, 256]
    assert set(card["meta"]["metrics"]["per_condition"]) == set(CONDITIONS)
    assert all(v.dtype != torch.float32 for v in card["model"].values())  # stored in fp16
    text = model_card(card["meta"], ["seg-perception train --model instance ..."])
    assert "| condition | AP % | AP50 % |" in text and "| bicycle |" in text and "Backbone initialised" in text
    assert all(f"| {c} |" in text for c in CONDITIONS)


def test_a_run_stopped_on_purpose_is_evaluated_and_carded_there(tmp_path: Path) -> None:
    cfg = _tiny(tmp_path / "s", iterations=6)
    final = train(cfg, stop_after=2, finish_at_stop=True)
    card = torch.load(final, weights_only=True)
    assert (
        card["meta"]["stopped_at"] == 2
        and torch.load(tmp_path / "s" / "last.pth", weights_only=False)["iteration"] == 2
    )
    assert "2 iterations of a 6-iteration schedule" in model_card(card["meta"], ["..."])
    again = torch.load(train(cfg, stop_after=2, finish_at_stop=True), weights_only=True)  # resumes at 2: no training
    assert all(torch.equal(card["model"][k], again["model"][k]) for k in card["model"])
