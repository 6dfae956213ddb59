"""torchvision model factories and checkpoint loading.

Nothing here downloads: every factory builds an untrained architecture and weights come from
a file on disk. A checkpoint is either a bare torchvision ``state_dict`` or our own card
format ``{"model": state_dict, "meta": {...}}`` whose ``meta`` carries what the loader must
know (architecture, label set, input size, normalisation): the preprocessing travels with
the weights, as with torchvision's ``Weights``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from seg_perception.config.choices import semantic_model
from seg_perception.errors import CheckpointError

if TYPE_CHECKING:
    from torchvision.models.segmentation import DeepLabV3

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _deeplab_mobilenet(num_classes: int, aux: bool) -> DeepLabV3:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux)


def _deeplab_resnet50(num_classes: int, aux: bool) -> DeepLabV3:
    from torchvision.models.segmentation import deeplabv3_resnet50

    return deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux)


# (num_classes, aux_loss) -> an untrained DeepLabV3, by architecture name. The names, and the
# input-size multiple each needs, are the configuration's (config/choices.py).
SEMANTIC_ARCHITECTURES: dict[str, Callable[[int, bool], DeepLabV3]] = {
    "deeplabv3_mobilenet_v3_large": _deeplab_mobilenet,
    "deeplabv3_resnet50": _deeplab_resnet50,
}


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file into (state_dict, meta). Accepts torchvision state dicts,
    ``{"model": ...}``/``{"state_dict": ...}`` wrappers and our card format."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        # Broad on purpose: torch.load fails on foreign or corrupt files with many error types (zip, pickle, runtime).
        raise CheckpointError(f"checkpoint {p} is not a readable torch file: {err}") from err
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"checkpoint {p} holds a {type(raw).__name__}, expected a state dict")
    meta: dict[str, Any] = dict(raw.get("meta", {})) if isinstance(raw.get("meta"), Mapping) else {}
    state = raw
    for key in ("model", "state_dict"):
        if isinstance(raw.get(key), Mapping):
            state = raw[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"checkpoint {p} contains no tensors")
    return tensors, meta


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, with an error naming what does not fit.

    The auxiliary DeepLab head is optional: its keys are dropped when the model has none.
    Half-precision checkpoints (shipped to save space) are cast to the model's dtype.
    """
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith("aux_classifier.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_head(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch {_head(mismatched)}")
        raise CheckpointError(f"checkpoint {source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _head(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def build_semantic_model(
    arch_name: str, num_classes: int, checkpoint: str | Path | None, seed: int = 0
) -> tuple[DeepLabV3, dict[str, Any]]:
    """Build a DeepLabV3 in eval mode; load ``checkpoint`` when given.

    Without a checkpoint the weights are untrained but reproducible (seeded), so the offline
    core and a node started with the same settings agree. Returns (model, checkpoint meta).
    """
    semantic_model(arch_name)  # a ConfigError naming the known architectures
    build = SEMANTIC_ARCHITECTURES[arch_name]
    meta: dict[str, Any] = {}
    if checkpoint:
        state, meta = read_checkpoint(checkpoint)
        if meta.get("arch") not in (None, arch_name):
            raise CheckpointError(
                f"checkpoint {checkpoint} is a {meta['arch']!r} model, the config asks for {arch_name!r}"
            )
        model = build(num_classes, False)
        load_weights(model, state, str(checkpoint))
        if "mean" in meta or "std" in meta:
            # The checkpoint's own input normalisation travels with the model into SemanticHead.
            model.input_normalization = _normalization(meta, checkpoint)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build(num_classes, False)
    return model.eval(), meta


def _normalization(meta: dict[str, Any], checkpoint: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        mean = tuple(float(v) for v in meta.get("mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in meta.get("std", IMAGENET_STD))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {checkpoint}: meta mean/std must be 3 numbers each ({err})") from err
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CheckpointError(
            f"checkpoint {checkpoint}: meta mean/std must be 3 numbers each, std > 0; got mean {mean}, std {std}"
        )
    return mean, std


class SemanticHead(nn.Module):
    """uint8 RGB frames (N, H, W, 3) -> (class ids, confidence), both uint8 (N, H, W).

    Normalisation runs inside the graph, so every backend (torch, ONNX Runtime, TensorRT)
    takes the same uint8 batch and pre-processing happens on the inference device. The
    reduction (argmax, max softmax x 255) also runs there, keeping the host transfer at one
    byte per pixel. With ``with_confidence=False`` the confidence output is empty.
    """

    # Buffers (registered in __init__): x/255 - mean)/std folded into x * scale + shift.
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        with_confidence: bool = True,
    ) -> None:
        super().__init__()
        # Default: the normalisation the checkpoint was trained with (build_semantic_model), else ImageNet's.
        own_mean, own_std = getattr(model, "input_normalization", (IMAGENET_MEAN, IMAGENET_STD))
        mean = own_mean if mean is None else mean
        std = own_std if std is None else std
        self.model = model
        self.with_confidence = with_confidence
        std_t = torch.tensor(std).view(1, 3, 1, 1)
        # x/255 - mean)/std folded into one multiply-add
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -torch.tensor(mean).view(1, 3, 1, 1) / std_t, persistent=False)

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) applied to x/255, recovered from the folded scale and shift."""
        std = 1.0 / (255.0 * self.scale.flatten().double())
        mean = -self.shift.flatten().double() * std
        return tuple(mean.tolist()), tuple(std.tolist())

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) class scores for uint8 (N, H, W, 3) frames (training, evaluation)."""
        # Cast before the permute: TensorRT's ONNX parser rejects a Transpose of uint8.
        x = frames.to(self.scale.dtype).permute(0, 3, 1, 2) * self.scale + self.shift
        # torchvision's segmentation models return {"out": logits[, "aux": ...]}; nn.Module calls are untyped.
        return cast(torch.Tensor, self.model(x)["out"])

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(frames)
        if not self.with_confidence:
            empty = torch.empty(0, dtype=torch.uint8, device=frames.device)
            return class_argmax(logits), empty
        top, classes = logits.float().softmax(1).max(1)
        return classes.to(torch.uint8), (top * 255.0).round().to(torch.uint8)


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) index of the largest of the (N, C, H, W) ``logits``, the first where
    several tie, as ``logits.argmax(1)``.

    On the CPU ``argmax(1)`` reduces across channel planes a pixel at a time and took three
    times as long as the model's last layers (about 30 ms at 19 x 256 x 512 here); comparing
    whole planes in turn gives the same map in a third of that (test_semantic). Exported graphs
    (ONNX, TensorRT) and other devices keep the one ArgMax operator their runtimes fuse.
    """
    tracing = torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]  # public, not re-exported
    if logits.device.type != "cpu" or tracing or torch.onnx.is_in_onnx_export():
        return logits.argmax(1).to(torch.uint8)
    best = logits[:, 0].clone()
    classes = torch.zeros(best.shape, dtype=torch.uint8)
    for c in range(1, logits.shape[1]):
        plane = logits[:, c]
        higher = plane > best  # strictly: a tie keeps the earlier class, as argmax does
        classes.masked_fill_(higher, c)
        torch.maximum(best, plane, out=best)
    return classes
