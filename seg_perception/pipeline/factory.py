"""Build the cores from their configuration records (one place for every entry point)."""

from __future__ import annotations

from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig
from seg_perception.errors import BackendError
from seg_perception.inference.registry import log_serving, resolve_device
from seg_perception.pipeline.instance import InstanceSegmenter
from seg_perception.pipeline.semantic import SemanticSegmenter


def semantic_from_config(config: SemanticModelConfig) -> SemanticSegmenter:
    return SemanticSegmenter.from_config(config)


def instance_from_config(config: InstanceModelConfig) -> InstanceSegmenter:
    """The instance core on the configured backend: ``torch`` (eager), ``onnxruntime`` (the
    split graphs under the engines folder, exported there when missing), ``tensorrt`` (the
    split engines built there) or ``auto`` (tensorrt where valid engines exist and can run
    here, else onnxruntime where matching split graphs exist on a CPU, else torch)."""
    from seg_perception.models.instance import load_coco_mapping

    device = resolve_device(config.device)
    if config.precision != "fp32" and config.backend == "torch":
        raise BackendError(
            f"precision {config.precision} for instance models needs backend onnxruntime or tensorrt and exported "
            "split graphs (seg-perception export --model instance)"
        )
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendError("device cuda requested but torch sees no CUDA GPU")
    size = (config.input_height, config.input_width)
    coco_mapping = load_coco_mapping(config.coco_mapping) if config.coco_mapping else None

    def build() -> InstanceSegmenter:
        return InstanceSegmenter.build(
            config.model,
            config.labels,
            config.checkpoint or None,
            size,
            coco_mapping=coco_mapping,
            device=device,
            score_threshold=config.score_threshold,
            mask_threshold=config.mask_threshold,
            max_instances=config.max_instances,
        )

    if config.backend == "torch":
        segmenter = build()
        log_serving("instance", segmenter.backend, config.device, "backend torch configured")
        return segmenter

    from seg_perception.inference.instance_backend import create_instance_backend
    from seg_perception.inference.instance_split import instance_artifact_paths

    # engines_dir is resolved against the share directory by the config
    files = instance_artifact_paths(config.engines_dir, config.model, size, config.precision)
    paths = {part: onnx for part, (onnx, _) in files.items()}
    engines = {part: engine for part, (_, engine) in files.items()}
    segmenter = build()
    segmenter.backend = create_instance_backend(
        config.backend, segmenter.model, size, config.precision, paths, device, engines
    )
    log_serving("instance", segmenter.backend, config.device, f"backend {config.backend}; choice logged above")
    return segmenter
