"""Instance segmentation core: decoded frames in, Cityscapes-style instance maps out.

Encoding (contract, ``instance/instance_map``): a uint16 map at the input frame's resolution
where pixel = ``label_id * 1000 + k``; ``label_id`` is the class's Cityscapes *label* id (car
= 26, person = 24; not its train id) and ``k >= 1`` numbers the instances of that class in the
frame by descending score; 0 = no instance. This is the ``*_instanceIds.png`` layout, so
cityscapesscripts reads published maps directly. ``k`` stays below 1000 and every value must
fit in uint16: :func:`check_instance_encoding` rejects class sets and ``max_instances`` that
would not, at construction.

Overlaps: every pixel goes to the highest-scoring instance whose mask covers it (ties: the
detection listed first). Instances left with no pixel after that are dropped before
numbering, so every record's value occurs in the map and ``k`` has no gaps.

Masks reach :func:`instances_from_detections` in one of two layouts:

* ``roi_masks=False``: probabilities already pasted into an image, (N, 1, h, w) or (N, h, w),
  at the input resolution or at another one (the model's); ``boxes`` are in the masks'
  pixel coordinates and both are scaled to ``image_size``;
* ``roi_masks=True``: torchvision's raw per-box masks, (N, 1, M, M) sigmoid probabilities
  from ``roi_heads``; ``boxes`` are in ``source_size`` coordinates. Each mask is pasted
  exactly as torchvision's ``paste_masks_in_image`` would paste it at ``image_size``, but only
  inside its box, so the cost is the boxes' area rather than N full frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.nn.functional import interpolate
from torchvision.models.detection.roi_heads import expand_boxes, expand_masks
from torchvision.models.detection.transform import resize_boxes

from seg_perception.errors import ConfigError
from seg_perception.inference.base import Detections, InstanceBackend
from seg_perception.inference.torch_backend import TorchInstanceBackend
from seg_perception.io.image import DecodedImage, eight_bit, to_rgb
from seg_perception.labels import Label, LabelSet, load_label_set
from seg_perception.models.instance import build_instance_model, instance_class_names
from seg_perception.pipeline.overlays import draw_instance_overlay
from seg_perception.pipeline.preprocess import resize_batch

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

# Detections of one frame as numpy arrays or torch tensors (instances_from_detections).
DetectionArray = torch.Tensor | npt.ArrayLike

log = logging.getLogger(__name__)

ID_MULTIPLIER = 1000  # Cityscapes instanceIds: label_id * 1000 + k
MAX_INSTANCES_PER_CLASS = ID_MULTIPLIER - 1
UINT16_MAX = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class InstanceRecord:
    """One instance of a frame.

    value: its pixels' value in the instance map (``label_id * 1000 + k``); bbox: the
    detector's box (x0, y0, x1, y1) in input-frame pixels, clipped to the frame; area: pixels
    it owns in the map after overlap resolution (>= 1).
    """

    value: int
    label_id: int
    train_id: int
    name: str
    score: float
    bbox: tuple[float, float, float, float]
    area: int

    @property
    def k(self) -> int:
        return self.value % ID_MULTIPLIER


@dataclass(frozen=True)
class InstanceResult:
    """instance_map: (H, W) uint16 at the input resolution; instances by descending score."""

    instance_map: npt.NDArray[np.uint16]
    instances: list[InstanceRecord]


def check_instance_encoding(classes: Sequence[Label], max_instances: int) -> None:
    """Raise ConfigError unless every class's ``label_id * 1000 + max_instances`` is a valid
    uint16 instance value (label id >= 1, k < 1000)."""
    if isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1:
        raise ConfigError(f"max_instances must be a positive integer, got {max_instances!r}")
    if max_instances > MAX_INSTANCES_PER_CLASS:
        raise ConfigError(
            f"max_instances={max_instances}: the instanceIds encoding (label_id * {ID_MULTIPLIER} + k) "
            f"allows at most {MAX_INSTANCES_PER_CLASS} instances per class"
        )
    bad = [
        f"{c.name} (label id {c.id})" for c in classes if c.id < 1 or c.id * ID_MULTIPLIER + max_instances > UINT16_MAX
    ]
    if bad:
        raise ConfigError(
            f"classes {', '.join(bad)} do not fit the uint16 instance encoding label_id * {ID_MULTIPLIER} + k "
            f"with up to {max_instances} instances: label ids must be in "
            f"1..{(UINT16_MAX - max_instances) // ID_MULTIPLIER}"
        )


def instances_from_detections(
    boxes: DetectionArray,
    labels: DetectionArray,
    scores: DetectionArray,
    masks: DetectionArray,
    classes: Sequence[Label],
    *,
    image_size: tuple[int, int] | None = None,
    source_size: tuple[int, int] | None = None,
    roi_masks: bool = False,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    max_instances: int = 100,
) -> InstanceResult:
    """Detections of one frame -> instance map and records.

    boxes (N, 4) x0, y0, x1, y1; labels (N,) model class indices, where label ``j`` is
    ``classes[j - 1]`` (0 and out-of-range labels are ignored); scores (N,); masks: see the
    module docstring for the two layouts. numpy arrays or torch tensors.

    image_size: (H, W) of the output map, default ``source_size``. source_size: (h, w) the
    boxes (and pasted masks) refer to; default the pasted masks' size, required for roi masks
    unless equal to ``image_size``.

    Kept: detections with ``score >= score_threshold`` and a known class, the
    ``max_instances`` best by score (stable: ties keep input order). Mask pixel on:
    probability ``> mask_threshold`` (torchvision's convention).
    """
    check_instance_encoding(classes, max_instances)
    boxes_t = _as_tensor(boxes, torch.float32).reshape(-1, 4)
    labels_np = _as_tensor(labels, torch.int64).reshape(-1).numpy()
    scores_np = _as_tensor(scores, torch.float32).reshape(-1).numpy()
    masks_t = _as_tensor(masks, torch.float32)
    if masks_t.ndim == 3:
        masks_t = masks_t[:, None]
    n = boxes_t.shape[0]
    if not (labels_np.shape[0] == scores_np.shape[0] == masks_t.shape[0] == n) or masks_t.ndim != 4:
        raise ValueError(
            f"detections disagree: boxes {tuple(boxes_t.shape)}, labels {labels_np.shape}, "
            f"scores {scores_np.shape}, masks {tuple(masks_t.shape)} (expected (N, 1, h, w))"
        )
    if roi_masks:
        if source_size is None:
            source_size = image_size
    elif source_size is None:
        source_size = (int(masks_t.shape[-2]), int(masks_t.shape[-1]))
    elif tuple(masks_t.shape[-2:]) != tuple(source_size):
        raise ValueError(f"pasted masks are {tuple(masks_t.shape[-2:])}, source_size says {source_size}")
    if image_size is None:
        image_size = source_size
    if image_size is None or source_size is None:
        raise ValueError("roi masks need image_size or source_size")
    height, width = int(image_size[0]), int(image_size[1])

    # Selection: known class, score over threshold, best max_instances by score (stable).
    valid = np.flatnonzero((scores_np >= score_threshold) & (labels_np >= 1) & (labels_np <= len(classes)))
    order = valid[np.argsort(-scores_np[valid], kind="stable")][:max_instances]

    # Boxes in output pixels (float32, torchvision's own arithmetic).
    pick = torch.from_numpy(order.astype(np.int64))
    sel_boxes, sel_masks = boxes_t[pick], masks_t[pick]
    if (height, width) != tuple(source_size):
        sel_boxes = resize_boxes(sel_boxes, list(source_size), [height, width])

    # Paint from the lowest priority to the highest, so the best score owns each pixel.
    index_map = np.zeros((height, width), np.uint16)  # 0 = none, p + 1 = order position p
    if roi_masks:
        crops = _paste_roi_masks(sel_masks, sel_boxes, (height, width), mask_threshold)
        for p in range(len(order) - 1, -1, -1):
            y0, x0, crop = crops[p]
            if crop.size:
                index_map[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]][crop] = p + 1
    else:
        probs = sel_masks[:, 0].numpy()
        for p in range(len(order) - 1, -1, -1):
            prob = probs[p]
            if prob.shape != (height, width):
                prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
            index_map[prob > mask_threshold] = p + 1

    areas = np.bincount(index_map.ravel(), minlength=len(order) + 1)[1:]
    lut = np.zeros(len(order) + 1, np.uint16)
    per_class: dict[int, int] = {}
    records: list[InstanceRecord] = []
    box_np = sel_boxes.numpy().astype(np.float64)
    for p, i in enumerate(order):
        if areas[p] == 0:
            continue
        label = classes[int(labels_np[i]) - 1]
        k = per_class.get(label.id, 0) + 1
        per_class[label.id] = k
        value = label.id * ID_MULTIPLIER + k
        lut[p + 1] = value
        x0, y0, x1, y1 = box_np[p]
        bbox = (
            float(np.clip(x0, 0, width)),
            float(np.clip(y0, 0, height)),
            float(np.clip(x1, 0, width)),
            float(np.clip(y1, 0, height)),
        )
        records.append(
            InstanceRecord(value, label.id, label.train_id, label.name, float(scores_np[i]), bbox, int(areas[p]))
        )
    return InstanceResult(lut[index_map], records)


def _as_tensor(x: DetectionArray, dtype: torch.dtype) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device="cpu", dtype=dtype)


def _paste_roi_masks(
    masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], threshold: float
) -> list[tuple[int, int, npt.NDArray[np.bool_]]]:
    """Per-box (M, M) masks -> (y0, x0, boolean crop) inside the image, pixel for pixel what
    torchvision's ``paste_masks_in_image`` gives (then ``> threshold``), without building
    full-frame arrays."""
    if masks.shape[0] == 0:
        return []
    im_h, im_w = size
    padded, scale = expand_masks(masks, padding=1)
    ext = expand_boxes(boxes, scale).to(dtype=torch.int64).tolist()
    crops = []
    for m, (bx0, by0, bx1, by1) in zip(padded, ext):
        w = max(bx1 - bx0 + 1, 1)
        h = max(by1 - by0 + 1, 1)
        x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
        y0, y1 = max(by0, 0), min(by1 + 1, im_h)
        if x1 <= x0 or y1 <= y0:
            crops.append((0, 0, np.zeros((0, 0), bool)))
            continue
        resized = interpolate(m[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        crop = resized[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > threshold
        crops.append((y0, x0, crop.numpy()))
    return crops


class InstanceSegmenter:
    """Batch of frames in, one :class:`InstanceResult` per frame out, each at its own frame's
    resolution. Runs a torchvision Mask R-CNN in eval mode (torch backend).

    Frames are resized to ``input_size`` = (H, W) with :func:`resize_batch` (as for semantic
    segmentation, so a combined node can share the batch); the model's transform normalises
    and is configured not to resize again (``min_size = min(H, W)``, ``max_size = max(H, W)``).
    """

    def __init__(
        self,
        model: MaskRCNN,
        labels: LabelSet,
        input_size: tuple[int, int],
        *,
        device: str = "cpu",
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
        max_instances: int = 100,
    ) -> None:
        self.classes = labels.thing_classes
        check_instance_encoding(self.classes, max_instances)
        for name, value in (("score_threshold", score_threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        n_model = model.roi_heads.box_predictor.cls_score.out_features
        if n_model != 1 + len(self.classes):
            raise ConfigError(
                f"the instance model predicts {n_model} classes, the label set {labels.name!r} needs "
                f"{1 + len(self.classes)} (background + {[c.name for c in self.classes]})"
            )
        height, width = input_size
        if height <= 0 or width <= 0:
            raise ConfigError(f"input size must be positive, got {input_size}")
        self.labels = labels
        self.input_size = (int(height), int(width))
        self.device = device
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.max_instances = int(max_instances)
        self.palette = labels.palette()
        model.transform.min_size = (min(height, width),)
        model.transform.max_size = max(height, width)
        # Let the model drop what we would drop anyway, before the mask head runs. torchvision
        # keeps scores > score_thresh; we keep >= score_threshold.
        model.roi_heads.score_thresh = float(np.nextafter(np.float32(score_threshold), np.float32(-1)))
        model.roi_heads.detections_per_img = self.max_instances
        self.model = model.to(device).eval()
        self._batch: npt.NDArray[np.uint8] | None = None
        # Whatever runs detection (``detect(frames) -> list[Detections]``, ``name``, ``device``,
        # ``precision``). Backends use this model object, so the thresholds set above apply to
        # them too; pipeline/factory.py may replace it with the ONNX Runtime or TensorRT split.
        self.backend: InstanceBackend = TorchInstanceBackend(self.model, self.input_size, device)

    @classmethod
    def build(
        cls,
        arch: str,
        labels: str | LabelSet = "cityscapes",
        checkpoint: str | Path | None = None,
        input_size: tuple[int, int] = (512, 1024),
        *,
        coco_mapping: Mapping[str, str] | None = None,
        seed: int = 0,
        device: str = "cpu",
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
        max_instances: int = 100,
    ) -> InstanceSegmenter:
        """Build the model for a label set (and load a checkpoint) and wrap it."""
        label_set = load_label_set(labels) if isinstance(labels, (str, Path)) else labels
        names = instance_class_names(label_set)
        model, meta = build_instance_model(
            arch,
            len(names),
            checkpoint,
            seed=seed,
            min_size=min(input_size),
            max_size=max(input_size),
            coco_mapping=coco_mapping,
            class_names=names,
        )
        if meta.get("labels") not in (None, label_set.name):
            log.warning("checkpoint was trained on label set %r, the config uses %r", meta["labels"], label_set.name)
        return cls(
            model,
            label_set,
            input_size,
            device=device,
            score_threshold=score_threshold,
            mask_threshold=mask_threshold,
            max_instances=max_instances,
        )

    def detect(self, batch: npt.NDArray[np.uint8]) -> list[Detections]:
        """(N, H, W, 3) uint8 RGB at the model input size -> raw detections per frame, on
        ``self.backend`` (eager torch unless the factory chose the ONNX Runtime or TensorRT split)."""
        return self.backend.detect(batch)

    def segment(self, images: Sequence[DecodedImage]) -> list[InstanceResult]:
        """Run a batch. Each result has its own frame's resolution."""
        if not images:
            return []
        images = [eight_bit(img) for img in images]  # a mono16 camera's frames too
        self._batch = resize_batch(images, self.input_size, out=self._batch)
        results = []
        for img, det in zip(images, self.detect(self._batch)):
            results.append(
                instances_from_detections(
                    det.boxes,
                    det.labels,
                    det.scores,
                    det.masks,
                    self.classes,
                    image_size=(img.height, img.width),
                    source_size=self.input_size,
                    roi_masks=True,
                    score_threshold=self.score_threshold,
                    mask_threshold=self.mask_threshold,
                    max_instances=self.max_instances,
                )
            )
        return results

    def overlay(self, image: DecodedImage, result: InstanceResult, alpha: float = 0.5) -> npt.NDArray[np.uint8]:
        return draw_instance_overlay(to_rgb(image), result, self.palette, alpha)
