"""What a node says about the models it serves: one log line at start-up (warning loudly about
untrained weights) and the model, backend, device and checkpoint values on /diagnostics."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from seg_perception.config.records import InstanceModelConfig
from seg_perception.inference.registry import resolve_device
from seg_perception.pipeline.semantic import SemanticSegmenter


def semantic_values(segmenter: SemanticSegmenter) -> dict[str, Any]:
    """The semantic model's /diagnostics values: model, backend, device, precision, checkpoint."""
    backend = segmenter.backend
    return {
        "model": segmenter.config.model,
        "backend": backend.name,
        "device": backend.device,
        "precision": backend.precision,
        "checkpoint": segmenter.config.checkpoint or "untrained",
    }


def instance_values(config: InstanceModelConfig, segmenter: Any = None) -> dict[str, Any]:
    """The instance model's /diagnostics values (``instance_*``)."""
    backend = getattr(getattr(segmenter, "backend", None), "name", "torch")
    return {
        "instance_model": config.model,
        "instance_backend": backend,
        "instance_device": resolve_device(config.device),
        "instance_checkpoint": config.checkpoint or "untrained",
    }


def describe_semantic(node: Node, segmenter: SemanticSegmenter) -> str:
    """One log line about the semantic core; warns when it runs untrained weights."""
    cfg, backend = segmenter.config, segmenter.backend
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    where = f"{backend.name}/{backend.device}/{backend.precision}"
    return f"{cfg.model} on {where}, input {cfg.input_width}x{cfg.input_height}"


def describe_instance(node: Node, cfg: InstanceModelConfig, segmenter: Any = None) -> str:
    if not cfg.checkpoint:
        node.get_logger().warning(f"no checkpoint configured for {cfg.model}: UNTRAINED weights, output is meaningless")
    backend = getattr(getattr(segmenter, "backend", None), "name", "torch")
    return (
        f"{cfg.model} on {backend}/{resolve_device(cfg.device)}/{cfg.precision}, "
        f"input {cfg.input_width}x{cfg.input_height}"
    )
