"""Build the cores from their configuration records (one place for every entry point)."""

from __future__ import annotations

from ..config import InstanceModelConfig, SemanticModelConfig
from ..errors import BackendError
from ..inference.registry import resolve_device
from .instance import InstanceSegmenter
from .semantic import SemanticSegmenter


def semantic_from_config(config: SemanticModelConfig) -> SemanticSegmenter:
    return SemanticSegmenter.from_config(config)


def instance_from_config(config: InstanceModelConfig) -> InstanceSegmenter:
    from ..instance_models import load_coco_mapping

    device = resolve_device(config.device)
    if config.precision != "fp32":
        raise BackendError(f"precision {config.precision} is not available for instance models yet (fp32 only)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendError("device cuda requested but torch sees no CUDA GPU")
    return InstanceSegmenter.build(
        config.model,
        config.labels,
        config.checkpoint or None,
        (config.input_height, config.input_width),
        coco_mapping=load_coco_mapping(config.coco_mapping) if config.coco_mapping else None,
        device=device,
        score_threshold=config.score_threshold,
        mask_threshold=config.mask_threshold,
        max_instances=config.max_instances,
    )
