"""instance_segmentation_node: camera frames in, Mask R-CNN instance maps out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seg_perception.config.records import InstanceModelConfig
from seg_perception.pipeline.factory import instance_from_config
from seg_perception.pipeline.instance import InstanceSegmenter
from seg_perception.ros.node_base import InputFrame, SegmentationNodeBase, describe_instance
from seg_perception.ros.outputs import InstanceOutputs
from seg_perception.ros.runner import run_node


class InstanceSegmentationNode(SegmentationNodeBase):
    config_name = "instance"

    def __init__(self, node_name: str = "instance_segmentation_node", **kwargs: Any) -> None:
        self.segmenter: InstanceSegmenter | None = None
        super().__init__(node_name, **kwargs)

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
        for frame, result in zip(frames, self.segmenter.segment([f.image for f in frames])):
            self.outputs_of(frame).publish(frame, result)
            self.published(frame)

    def diagnostic_values(self) -> dict[str, Any]:
        return self.instance_diagnostics(self.instance_config, self.segmenter) if self.segmenter is not None else {}


def main(args: list[str] | None = None) -> int:
    return run_node(InstanceSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
