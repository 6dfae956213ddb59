"""semantic_segmentation_node: camera frames in, DeepLab class maps out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seg_perception.config.records import SemanticModelConfig
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.channels import InputFrame
from seg_perception.ros.core_info import describe_semantic, semantic_values
from seg_perception.ros.node_base import SegmentationNodeBase
from seg_perception.ros.outputs import SemanticOutputs
from seg_perception.ros.runner import run_node


class SemanticSegmentationNode(SegmentationNodeBase):
    config_name = "semantic"
    default_name = "semantic_segmentation_node"
    segmenter: SemanticSegmenter | None = None  # made in configure, dropped in cleanup

    def setup_core(self, params: dict[str, Any]) -> None:
        self.segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))
        self.core_description = describe_semantic(self, self.segmenter)
        # engine_policy build_in_background: serve now, build the engine in a child process
        self.segmenter.start_engine_build(self.log_event)

    def release_core(self) -> None:
        if self.segmenter is not None:
            self.segmenter.close()
        self.segmenter = None

    def make_outputs(self, prefix: str) -> SemanticOutputs:
        assert self.segmenter is not None
        return SemanticOutputs(self, self.segmenter, prefix)

    def process(self, frames: Sequence[InputFrame]) -> None:
        assert self.segmenter is not None
        outputs: list[SemanticOutputs] = [self.outputs_of(f) for f in frames]
        confidence = any(o.wants_confidence() for o in outputs)
        results = self.segmenter.segment([f.image for f in frames], with_confidence=confidence)
        self.publish_results(frames, results, outputs)

    def diagnostic_values(self) -> dict[str, Any]:
        if self.segmenter is None:
            return {}
        return {**semantic_values(self.segmenter), **self.segmenter.engine_diagnostics()}


def main(args: list[str] | None = None) -> int:
    return run_node(SemanticSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
