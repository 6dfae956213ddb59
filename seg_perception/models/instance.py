"""Mask R-CNN factories and checkpoint loading for instance segmentation.

Nothing here downloads (``weights=None, weights_backbone=None`` always); weights come from a
file on disk, read with :func:`seg_perception.models.semantic.read_checkpoint` and loaded with
:func:`seg_perception.models.semantic.load_weights`, so errors read the same as for DeepLab.

Class layout of a model (``num_classes``): index 0 is background, indices 1..K are the thing
classes of the label set in train-id order (:func:`instance_class_names`). Two kinds of
checkpoint load:

* **ours**: a state dict of exactly that layout, bare or in the card format
  ``{"model": state_dict, "meta": {"arch", "labels", "classes", "input_size", ...}}``
  (:func:`save_instance_checkpoint` writes it);
* **torchvision COCO layout** (91 categories, ``__background__`` and ``N/A`` included), given a
  mapping ``{COCO category name: label name}`` (default: ``config/coco_to_cityscapes.yaml``).
  The box-classifier, box-regression and mask-logit rows of the mapped COCO categories are
  copied into our rows; classes without a COCO source (Cityscapes ``rider``) get zero weights
  and a very negative classifier bias, so the model never reports them. COCO categories that
  are not mapped simply disappear: their score mass is renormalised over background and the
  kept classes by the softmax (the price of slicing rather than keeping 91 outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
import yaml
from torch import nn

from seg_perception.config.choices import instance_model
from seg_perception.errors import CheckpointError, ConfigError
from seg_perception.labels import LabelSet
from seg_perception.models.semantic import load_weights, read_checkpoint
from seg_perception.resources import config_yaml

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

log = logging.getLogger(__name__)

BACKGROUND = "__background__"
COCO_NUM_CLASSES = 91
DEFAULT_COCO_MAPPING = "coco_to_cityscapes"

# Rows of the class-dependent predictor layers (the only layers whose shape depends on the
# class count). Box regression has 4 rows per class.
CLS_KEYS = ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias")
BOX_KEYS = ("roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias")
MASK_KEYS = (
    "roi_heads.mask_predictor.mask_fcn_logits.weight",
    "roi_heads.mask_predictor.mask_fcn_logits.bias",
)
# Classifier bias of a class the checkpoint cannot predict: softmax probability ~0; finite
# and representable in fp16, so exported graphs stay valid.
NEVER_LOGIT = -1.0e4

# MobileNetV3-Large FPN: torchvision's stage indices of mobilenet_v3_large are
# [0, 2, 4, 7, 13, 16] (first conv, the stride-2 blocks, the last 960-channel conv). Returned
# stages 2, 3, 5 give FPN levels at strides 8, 16 and 32 (block 4: 40 ch, block 7: 80 ch,
# block 16: 960 ch); LastLevelMaxPool adds "pool" at stride 64. torchvision's detection
# variant returns only stride-32 maps, too coarse for masks of distant pedestrians.
MOBILENET_RETURNED_LAYERS = [2, 3, 5]
MOBILENET_FEATURE_NAMES = ["0", "1", "2"]  # RoIAlign levels (not "pool"), as in ResNet-FPN
# One tuple per FPN level (strides 8, 16, 32, 64), two sizes each: the RPN head is shared by
# all levels, so every level needs the same number of anchors per location.
MOBILENET_ANCHOR_SIZES = ((16, 32), (48, 64), (96, 160), (256, 512))
MOBILENET_ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * len(MOBILENET_ANCHOR_SIZES)
# The speed variant keeps fewer proposals at inference than torchvision's 1000/1000: the box
# head's cost is linear in them (training keeps torchvision's 2000/2000).
MOBILENET_TEST_PROPOSALS = {"rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 300}
# The box head's first layer (256*7*7 -> representation) dominates both the weights and, at 300
# proposals, the compute of the light variant: 512 instead of torchvision's 1024 halves it
# (12.8M -> 6.4M parameters) and keeps the shipped weights within their size budget.
MOBILENET_BOX_REPRESENTATION = 512


class MaskRCNNBuilder(Protocol):
    """(num_classes, min_size, max_size, extra MaskRCNN kwargs) -> an untrained Mask R-CNN."""

    def __call__(self, num_classes: int, min_size: int, max_size: int, **kwargs: Any) -> MaskRCNN: ...


def _maskrcnn_resnet50_fpn_v2(num_classes: int, min_size: int, max_size: int, **kwargs: Any) -> MaskRCNN:
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    return maskrcnn_resnet50_fpn_v2(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        **kwargs,
    )


def _maskrcnn_mobilenet_v3_large_fpn(num_classes: int, min_size: int, max_size: int, **kwargs: Any) -> MaskRCNN:
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import mobilenet_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    # Trainable BatchNorm: torchvision's default FrozenBatchNorm2d only makes sense over
    # pretrained ImageNet statistics, and nothing is downloaded here.
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v3_large",
        weights=None,
        fpn=True,
        trainable_layers=6,
        returned_layers=MOBILENET_RETURNED_LAYERS,
        norm_layer=nn.BatchNorm2d,
    )
    anchors = AnchorGenerator(MOBILENET_ANCHOR_SIZES, MOBILENET_ASPECT_RATIOS)
    for key, value in MOBILENET_TEST_PROPOSALS.items():
        kwargs.setdefault(key, value)
    box_roi_pool = MultiScaleRoIAlign(MOBILENET_FEATURE_NAMES, output_size=7, sampling_ratio=2)
    mask_roi_pool = MultiScaleRoIAlign(MOBILENET_FEATURE_NAMES, output_size=14, sampling_ratio=2)
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, MOBILENET_BOX_REPRESENTATION)
    return MaskRCNN(
        backbone,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=box_roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(MOBILENET_BOX_REPRESENTATION, num_classes),
        mask_roi_pool=mask_roi_pool,
        mask_predictor=MaskRCNNPredictor(256, 256, num_classes),  # torchvision's default mask predictor
        **kwargs,
    )


# Untrained Mask R-CNN builders by architecture name. The names, and the multiple batches are
# padded to, are the configuration's (config/choices.py).
INSTANCE_ARCHITECTURES: dict[str, MaskRCNNBuilder] = {
    "maskrcnn_resnet50_fpn_v2": _maskrcnn_resnet50_fpn_v2,
    "maskrcnn_mobilenet_v3_large_fpn": _maskrcnn_mobilenet_v3_large_fpn,
}


def instance_class_names(labels: LabelSet) -> list[str]:
    """Model class layout for a label set: background, then its thing classes by train id."""
    return [BACKGROUND, *(c.name for c in labels.thing_classes)]


def coco_category_names() -> list[str]:
    """torchvision's 91-entry COCO category list (index = model class index; offline metadata)."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    return list(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])


def load_coco_mapping(name_or_path: str | Path = DEFAULT_COCO_MAPPING) -> dict[str, str]:
    """Read ``{COCO category: label name}`` from ``config/<name>.yaml`` or a YAML path."""
    path = config_yaml(name_or_path, "", "COCO mapping")
    try:
        raw = yaml.safe_load(path.read_text())
        mapping = raw["coco_to_label"]
        if not isinstance(mapping, Mapping):
            raise TypeError("coco_to_label must be a mapping")
        return {str(k): str(v) for k, v in mapping.items()}
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise ConfigError(f"COCO mapping {path} is malformed: {err}") from err


def coco_rows(coco_mapping: Mapping[str, str], class_names: Sequence[str]) -> list[int | None]:
    """For each of our classes, the COCO row it takes its weights from (None: no source).

    Background takes COCO's background. Raises ConfigError for unknown COCO categories, labels
    the model does not have, and two COCO categories mapped onto one label.
    """
    coco = coco_category_names()
    coco_index = {name: i for i, name in enumerate(coco) if name not in ("N/A", BACKGROUND)}
    ours = {name: i for i, name in enumerate(class_names)}
    rows: list[int | None] = [None] * len(class_names)
    rows[0] = 0
    for coco_name, label in coco_mapping.items():
        if coco_name not in coco_index:
            raise ConfigError(f"COCO mapping: {coco_name!r} is not a COCO category (see torchvision's list)")
        if label not in ours or ours[label] == 0:
            raise ConfigError(
                f"COCO mapping: {coco_name!r} -> {label!r}, but the model's classes are {list(class_names[1:])}"
            )
        previous = rows[ours[label]]
        if previous is not None:
            raise ConfigError(f"COCO mapping: {label!r} is the target of both {coco[previous]!r} and {coco_name!r}")
        rows[ours[label]] = coco_index[coco_name]
    return rows


def slice_coco_state(
    state: Mapping[str, torch.Tensor], rows: Sequence[int | None], source: str
) -> dict[str, torch.Tensor]:
    """Rewrite the class-dependent predictor tensors of a 91-class COCO state dict to our
    class layout (``rows`` from :func:`coco_rows`); every other tensor is kept as is."""
    for key in (*CLS_KEYS, *BOX_KEYS, *MASK_KEYS):
        if key not in state:
            raise CheckpointError(f"checkpoint {source} has no {key}: not a torchvision Mask R-CNN state dict")
    n_src = state[CLS_KEYS[1]].shape[0]
    if n_src != COCO_NUM_CLASSES:
        raise CheckpointError(
            f"checkpoint {source} predicts {n_src} classes; a COCO mapping needs the torchvision "
            f"COCO layout ({COCO_NUM_CLASSES} classes)"
        )
    out = dict(state)

    def take(t: torch.Tensor, per_class: int, fill_bias: float) -> torch.Tensor:
        chunks = t.reshape(n_src, per_class, *t.shape[1:])
        new = torch.zeros((len(rows), per_class, *t.shape[1:]), dtype=t.dtype)
        for j, r in enumerate(rows):
            if r is None:
                if t.ndim == 1:
                    new[j] = fill_bias
            else:
                new[j] = chunks[r]
        return new.reshape(len(rows) * per_class, *t.shape[1:])

    out[CLS_KEYS[0]] = take(state[CLS_KEYS[0]], 1, 0.0)
    out[CLS_KEYS[1]] = take(state[CLS_KEYS[1]], 1, NEVER_LOGIT)
    for key in BOX_KEYS:
        out[key] = take(state[key], 4, 0.0)
    for key in MASK_KEYS:
        out[key] = take(state[key], 1, 0.0)
    return out


def build_instance_model(
    arch_name: str,
    num_classes: int,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    min_size: int = 512,
    max_size: int = 1024,
    coco_mapping: Mapping[str, str] | None = None,
    class_names: Sequence[str] | None = None,
    **model_kwargs: Any,
) -> tuple[MaskRCNN, dict[str, Any]]:
    """Build a Mask R-CNN in eval mode; load ``checkpoint`` when given.

    ``min_size``/``max_size`` configure torchvision's GeneralizedRCNNTransform: with the
    model input already resized to (H, W), ``min_size = min(H, W)`` and
    ``max_size = max(H, W)`` make its resize an identity. ``class_names`` (background first,
    see :func:`instance_class_names`) is required with ``coco_mapping`` and, when given, is
    checked against the classes recorded in a card checkpoint. ``model_kwargs`` go to
    torchvision's ``MaskRCNN`` (e.g. ``box_batch_size_per_image``). Without a checkpoint the
    weights are untrained but reproducible (seeded). Returns (model, checkpoint meta).
    """
    instance_model(arch_name)  # a ConfigError naming the known architectures
    if num_classes < 2:
        raise ConfigError(f"an instance model needs background + at least one class, got num_classes={num_classes}")
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"{len(class_names)} class names for num_classes={num_classes}")
    if coco_mapping is not None and class_names is None:
        raise ConfigError("loading a COCO-layout checkpoint needs the model's class names")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = INSTANCE_ARCHITECTURES[arch_name](num_classes, min_size, max_size, **model_kwargs)
    meta: dict[str, Any] = {}
    if checkpoint:
        source = str(checkpoint)
        state, meta = read_checkpoint(checkpoint)
        if meta.get("arch") not in (None, arch_name):
            raise CheckpointError(f"checkpoint {source} is a {meta['arch']!r} model, the config asks for {arch_name!r}")
        if coco_mapping is not None:
            assert class_names is not None
            rows = coco_rows(coco_mapping, class_names)
            unmapped = [name for name, r in zip(class_names, rows) if r is None]
            if unmapped:
                log.warning("COCO checkpoint %s has no class for %s: the model never reports them", source, unmapped)
            state = slice_coco_state(state, rows, source)
        else:
            n_ckpt = state.get(CLS_KEYS[1], torch.empty(num_classes)).shape[0]
            if n_ckpt == COCO_NUM_CLASSES and num_classes != COCO_NUM_CLASSES:
                raise CheckpointError(
                    f"checkpoint {source} has the torchvision COCO layout ({COCO_NUM_CLASSES} classes) "
                    f"but the model has {num_classes}: give a COCO mapping "
                    f"(config/{DEFAULT_COCO_MAPPING}.yaml) to load it"
                )
            recorded = meta.get("classes")
            if recorded is not None and class_names is not None and list(recorded) != list(class_names):
                raise CheckpointError(
                    f"checkpoint {source} was trained for classes {list(recorded)}, "
                    f"the model expects {list(class_names)}"
                )
        load_weights(model, state, source)
    return model.eval(), meta


def save_instance_checkpoint(
    path: str | Path,
    model: nn.Module,
    arch_name: str,
    class_names: Sequence[str],
    labels: str = "cityscapes",
    **meta: Any,
) -> Path:
    """Write our card format: ``{"model": state_dict, "meta": {...}}``."""
    instance_model(arch_name)  # a ConfigError naming the known architectures
    card = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {"arch": arch_name, "labels": labels, "classes": list(class_names), **meta},
    }
    p = Path(path)
    torch.save(card, p)
    return p
