"""instance_segmentation_node: camera frames in, Mask R-CNN instance maps out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seg_perception.config.records import InstanceModelConfig
from seg_perception.pipeline.factory import instance_from_config
from seg_perception.pipeline.instance import InstanceSegmenter
from seg_perception.ros.channels import InputFrame
from seg_perception.ros.core_info import describe_instance, instance_values
from seg_perception.ros.node_base import SegmentationNodeBase
from seg_perception.ros.outputs import InstanceOutputs
from seg_perception.ros.runner import run_node


class InstanceSegmentationNode(SegmentationNodeBase):
    config_name = "instance"
    default_name = "instance_segmentation_node"
    segmenter: InstanceSegmenter | None = None  # made in configure, dropped in cleanup

    def setup_core(self, params: dict[str, Any]) -> None:
        self.instance_config = InstanceModelConfig.from_params(params)
        self.segmenter = instance_from_config(self.instance_config)
        self.core_description = describe_instance(self, self.instance_config, self.segmenter)

    def release_core(self) -> None:
        self.segmenter = None

    def make_outputs(self, prefix: str) -> InstanceOutputs:
        assert self.segmenter is not None
        return InstanceOutputs(self, self.segmenter, prefix)

    def process(self, frames: Sequence[InputFrame]) -> None:
        assert self.segmenter is not None
        results = self.segmenter.segment([f.image for f in frames])
        self.publish_results(frames, results, [self.outputs_of(f) for f in frames])

    def diagnostic_values(self) -> dict[str, Any]:
        return instance_values(self.instance_config, self.segmenter) if self.segmenter is not None else {}


def main(args: list[str] | None = None) -> int:
    return run_node(InstanceSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
