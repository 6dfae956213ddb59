"""The models' deployable artifacts: where they go and how they are made, behind
`seg-perception export` and `seg-perception build-engine`.

The default paths are the ones the nodes look up (the config's ``engines_dir``, model, input size
and precision), so an export or build with no path options lands where the nodes find it. The
instance model is three split graphs, so its paths are part -> path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    from torch import nn

    from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig
    from seg_perception.pipeline.instance import InstanceSegmenter


@dataclass(frozen=True)
class SemanticTarget:
    """The semantic model of a config, the precision of its graph, and its ONNX and engine paths."""

    config: SemanticModelConfig
    precision: str
    onnx: Path
    engine: Path

    @property
    def input_size(self) -> tuple[int, int]:
        return self.config.input_height, self.config.input_width


@dataclass(frozen=True)
class InstanceTarget:
    """The instance model of a config, the precision of its graphs, and their paths (part -> path)."""

    config: InstanceModelConfig
    precision: str
    onnx: dict[str, Path]
    engine: dict[str, Path]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.config.input_height, self.config.input_width


def semantic_target(
    params: Mapping[str, Any],
    precision: str | None = None,
    engines_dir: str | None = None,
    onnx: str | None = None,
    engine: str | None = None,
) -> SemanticTarget:
    """The semantic model of ``params``; each of ``precision``, ``engines_dir``, ``onnx`` and
    ``engine`` defaults to the config's (the paths: where the nodes look)."""
    from seg_perception.config.records import SemanticModelConfig
    from seg_perception.inference.artifacts import artifact_paths

    config = SemanticModelConfig.from_params(params)
    precision = precision or config.precision
    onnx_path, engine_path = artifact_paths(
        engines_dir or config.engines_dir, config.model, (config.input_height, config.input_width), precision
    )
    return SemanticTarget(config, precision, Path(onnx or onnx_path), Path(engine or engine_path))


def instance_target(
    params: Mapping[str, Any], precision: str | None = None, engines_dir: str | None = None
) -> InstanceTarget:
    """The instance model of ``params``; ``precision`` and ``engines_dir`` default to the config's."""
    from seg_perception.config.records import InstanceModelConfig
    from seg_perception.inference.instance_split import instance_artifact_paths

    config = InstanceModelConfig.from_params(params)
    precision = precision or config.precision
    size = (config.input_height, config.input_width)
    paths = instance_artifact_paths(engines_dir or config.engines_dir, config.model, size, precision)
    return InstanceTarget(
        config, precision, {part: p[0] for part, p in paths.items()}, {part: p[1] for part, p in paths.items()}
    )


def calibration_frames(
    input_size: tuple[int, int],
    source: str | None = None,
    bag: str | None = None,
    limit: int = 256,
    topic: str | None = None,
) -> np.ndarray | None:
    """Calibration frames at ``input_size`` from a camera topic of ``bag``, else from ``source``
    (.npy or a folder of images); None without either."""
    from seg_perception.export.calibration import bag_calibration_frames, load_calibration_frames

    if bag:
        return bag_calibration_frames(bag, input_size, limit, topic)
    return load_calibration_frames(source, input_size, limit) if source else None


def export_semantic(
    target: SemanticTarget,
    out: Path,
    calib: np.ndarray | None,
    *,
    max_batch: int,
    int8_high_precision: str,
) -> tuple[nn.Module, Path]:
    """Export the semantic model of ``target`` (its checkpoint, or seeded weights) to ``out``;
    returns the torch model (the accuracy gate's reference) and the ONNX path."""
    from seg_perception.export.onnx import export_semantic_onnx
    from seg_perception.labels import load_label_set
    from seg_perception.models.semantic import build_semantic_model

    config = target.config
    model, _ = build_semantic_model(config.model, load_label_set(config.labels).num_classes, config.checkpoint or None)
    path = export_semantic_onnx(
        model,
        out,
        target.input_size,
        target.precision,
        calib,
        max_batch=max_batch,
        int8_high_precision=int8_high_precision,
    )
    return model, path


def export_instance(
    target: InstanceTarget,
    calib: np.ndarray | None,
    *,
    max_batch: int,
    int8_high_precision: str,
) -> tuple[InstanceSegmenter, dict[str, Path]]:
    """Export the instance model of ``target`` to its three split graphs; returns the eager
    segmenter (the accuracy gate runs both through it) and part -> ONNX path."""
    from seg_perception.export.instance import export_instance_onnx
    from seg_perception.pipeline.factory import instance_from_config

    # What gets exported is the eager torch model in fp32 on the CPU, whatever backend, device
    # and precision the config serves with (its precision is the target's, given separately).
    segmenter = instance_from_config(replace(target.config, backend="torch", device="cpu", precision="fp32"))
    paths = export_instance_onnx(
        segmenter.model,
        target.onnx,
        target.input_size,
        target.precision,
        calib,
        arch=target.config.model,
        max_batch=max_batch,
        int8_high_precision=int8_high_precision,
    )
    return segmenter, paths
