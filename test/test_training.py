"""Training is reproducible from the seed and resumes to the same result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seg_perception.errors import SegPerceptionError
from seg_perception.labels import load_label_set
from seg_perception.synthetic import CONDITIONS, generate_frame
from seg_perception.training import TrainConfig, instance_targets, train

pytestmark = pytest.mark.slow


def _tiny(out: Path, iterations: int = 4) -> TrainConfig:
    return TrainConfig(out=str(out), iterations=iterations, batch_size=2, height=64, width=128,
                       checkpoint_every=2, eval_frames_per_condition=1, workers=0)


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
