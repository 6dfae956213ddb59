"""The input normalisation a checkpoint was trained with travels with its weights."""

from __future__ import annotations

import pytest
import torch

from seg_perception.errors import CheckpointError


def test_a_checkpoints_own_normalisation_goes_into_the_graph(tmp_path) -> None:
    """mean/std stored with the weights are what SemanticHead (and so every backend) applies."""

    from seg_perception.models.semantic import IMAGENET_MEAN, SemanticHead, build_semantic_model

    model, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)
    torch.save(
        {"model": model.state_dict(), "meta": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
        tmp_path / "own.pth",
    )
    loaded, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, tmp_path / "own.pth")
    mean, std = SemanticHead(loaded).normalization()
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.25,) * 3)
    assert SemanticHead(model).normalization()[0] == pytest.approx(IMAGENET_MEAN)  # no meta: ImageNet
    torch.save(
        {"model": model.state_dict(), "meta": {"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}}, tmp_path / "bad.pth"
    )
    with pytest.raises(CheckpointError, match="mean/std must be 3 numbers"):
        build_semantic_model("deeplabv3_mobilenet_v3_large", 19, tmp_path / "bad.pth")
