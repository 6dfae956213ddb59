"""The CPU class argmax of SemanticHead equals torch's argmax, ties included."""

from __future__ import annotations

import torch

from seg_perception.models.semantic import class_argmax


def test_plane_by_plane_argmax_equals_torch_argmax_with_ties_and_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    # Rounded to a few levels: most pixels have several classes tied for the largest score.
    logits = (torch.randn(3, 19, 64, 96, generator=gen) * 2).round()
    ours = class_argmax(logits)
    assert ours.dtype == torch.uint8 and ours.shape == (3, 64, 96)
    assert torch.equal(ours.long(), logits.argmax(1))
    tied = (logits == logits.amax(1, keepdim=True)).sum(1) > 1
    assert tied.float().mean() > 0.2  # the ties were there to be broken


def test_argmax_on_real_scores_and_one_class_maps() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 19, 256, 512, generator=gen)
    assert torch.equal(class_argmax(logits).long(), logits.argmax(1))
    one = torch.zeros(2, 19, 8, 8)
    one[:, 7] = 1.0
    assert (class_argmax(one) == 7).all()
