"""The three dense parts of Mask R-CNN as modules that export to ONNX (see
:mod:`seg_perception.inference.instance_split` for the split and how it is served), and the
torch executors of the same modules: the reference every export is checked against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from seg_perception.inference.instance_split import GraphRunner

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN


class BackboneRpnGraph(nn.Module):
    """uint8 (N, H, W, 3) RGB -> FPN maps, RPN objectness and deltas per level."""

    # Buffers (registered in __init__): the model transform's normalisation.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: MaskRCNN) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.rpn_head = model.rpn.head
        self.register_buffer("mean", torch.tensor(model.transform.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.transform.image_std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = frames.float().permute(0, 3, 1, 2) / 255.0  # cast first: TensorRT transposes no uint8
        x = (x - self.mean) / self.std
        feats = list(self.backbone(x).values())
        objectness, deltas = self.rpn_head(feats)
        return (*feats, *objectness, *deltas)


class BoxHeadGraph(nn.Module):
    """RoI features (R, C, 7, 7) -> class logits (R, K), box regression (R, 4K)."""

    def __init__(self, model: MaskRCNN) -> None:
        super().__init__()
        self.head = model.roi_heads.box_head
        self.predictor = model.roi_heads.box_predictor

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # FastRCNNPredictor returns (class logits, box regression); module calls are typed Any.
        return cast("tuple[torch.Tensor, torch.Tensor]", self.predictor(self.head(roi_features)))


class MaskHeadGraph(nn.Module):
    """RoI features (R, C, 14, 14) -> mask logits (R, K, 28, 28)."""

    def __init__(self, model: MaskRCNN) -> None:
        super().__init__()
        self.head = model.roi_heads.mask_head
        self.predictor = model.roi_heads.mask_predictor

    def forward(self, roi_features: torch.Tensor) -> torch.Tensor:
        # MaskRCNNPredictor returns the mask logits; module calls are typed Any.
        return cast(torch.Tensor, self.predictor(self.head(roi_features)))


def torch_runners(model: MaskRCNN) -> dict[str, GraphRunner]:
    """The three graphs run by torch itself (the reference the exports are checked against)."""
    graphs = {"backbone": BackboneRpnGraph(model), "box_head": BoxHeadGraph(model), "mask_head": MaskHeadGraph(model)}

    def runner(graph: nn.Module) -> GraphRunner:
        def run(x: torch.Tensor) -> Sequence[torch.Tensor]:
            out = graph(x)
            return out if isinstance(out, tuple) else (out,)

        return run

    return {part: runner(g.eval()) for part, g in graphs.items()}
