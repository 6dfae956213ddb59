"""How an instance export is checked: the split path against eager torchvision
(:func:`eager_detect`, the reference) on generated road scenes, detections matched by class,
box IoU, score and mask agreement (the gates per precision). The torch executors of the
three graphs are in :mod:`.instance_graphs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.inference.base import Detections

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN


# Detection matching of the split path against eager torch (per precision): a torch detection
# is matched by an unmatched split-path detection of the same class with box IoU >= iou and
# |score difference| <= score; matched pairs' 28x28 masks (> 0.5) must agree on >= mask of
# their pixels. ``fraction``: share of torch detections (and of split detections) matched.
@dataclass(frozen=True)
class MatchGate:
    iou: float
    score: float
    mask: float
    fraction: float


MATCH_GATES: dict[str, MatchGate] = {
    "fp32": MatchGate(iou=0.9, score=0.01, mask=0.95, fraction=0.95),
    "fp16": MatchGate(iou=0.9, score=0.05, mask=0.90, fraction=0.80),
    "int8": MatchGate(iou=0.5, score=0.15, mask=0.80, fraction=0.50),
}


@dataclass(frozen=True)
class MatchReport:
    reference: int  # torch detections
    candidate: int  # split-path detections
    matched: int
    max_score_diff: float
    min_mask_agreement: float

    @property
    def fraction(self) -> float:
        """Matched share of the larger of the two detection sets (1.0 when both are empty)."""
        n = max(self.reference, self.candidate)
        return 1.0 if n == 0 else self.matched / n

    def __str__(self) -> str:
        return (
            f"{self.matched}/{self.reference} torch detections matched by {self.candidate} "
            f"({self.fraction:.1%}), max score diff {self.max_score_diff:.4f}, "
            f"min mask agreement {self.min_mask_agreement:.3f}"
        )


def match_detections(reference: Sequence[Detections], candidate: Sequence[Detections], gate: MatchGate) -> MatchReport:
    """Greedy matching, best reference score first: same class, IoU >= gate.iou,
    |score diff| <= gate.score, roi masks (> 0.5) agreeing on >= gate.mask of their pixels."""
    from torchvision.ops import box_iou

    n_ref = n_cand = matched = 0
    max_diff, min_mask = 0.0, 1.0
    for ref, cand in zip(reference, candidate, strict=True):
        n_ref += len(ref.scores)
        n_cand += len(cand.scores)
        if not len(ref.scores) or not len(cand.scores):
            continue
        iou = box_iou(ref.boxes.float(), cand.boxes.float())
        used = torch.zeros(len(cand.scores), dtype=torch.bool)
        for i in torch.argsort(ref.scores, descending=True).tolist():
            ok = (~used) & (cand.labels == ref.labels[i]) & (iou[i] >= gate.iou)
            ok &= (cand.scores - ref.scores[i]).abs() <= gate.score
            if not ok.any():
                continue
            j = int(torch.where(ok, iou[i], torch.tensor(-1.0)).argmax())
            agree = float(((ref.masks[i] > 0.5) == (cand.masks[j] > 0.5)).float().mean())
            if agree < gate.mask:
                continue
            used[j] = True
            matched += 1
            max_diff = max(max_diff, float((cand.scores[j] - ref.scores[i]).abs()))
            min_mask = min(min_mask, agree)
    return MatchReport(n_ref, n_cand, matched, max_diff, min_mask)


def scene_frames(input_size: tuple[int, int], count: int = 4, seed: int = 0) -> npt.NDArray[np.uint8]:
    """Generated road scenes (cars, people, ...) at ``input_size`` = (H, W), uint8 RGB."""
    from seg_perception.synthetic.frames import generate_frame

    height, width = input_size
    return np.stack([generate_frame(seed, i, width, height).image for i in range(count)])


@torch.inference_mode()
def eager_detect(model: MaskRCNN, frames: npt.NDArray[np.uint8]) -> list[Detections]:
    """What InstanceSegmenter's torch path returns (eager torchvision), for comparisons."""
    from seg_perception.inference.torch_backend import TorchInstanceBackend

    return TorchInstanceBackend(model, (frames.shape[1], frames.shape[2])).detect(frames)
