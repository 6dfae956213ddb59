"""semantic_segmentation_node: camera frames in, DeepLab class maps out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sensor_msgs.msg import Image

from ..config import SemanticModelConfig
from ..pipeline.semantic import SemanticSegmenter
from .messages import image_msg
from .node_base import InputFrame, SegmentationNodeBase
from .runner import run_node


class SemanticSegmentationNode(SegmentationNodeBase):
    config_name = "semantic"

    def __init__(self, node_name: str = "semantic_segmentation_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)

    def setup_core(self, params: dict[str, Any]) -> None:
        self.segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))
        backend = self.segmenter.backend
        self.core_description = (
            f"{self.segmenter.config.model} on {backend.name}/{backend.device}/{backend.precision}, "
            f"input {self.segmenter.config.input_width}x{self.segmenter.config.input_height}"
        )
        if not self.segmenter.config.checkpoint:
            self.get_logger().warning("no checkpoint configured: UNTRAINED weights, output is meaningless")

    def setup_publishers(self) -> None:
        self.pub_class_map = self.output_publisher(Image, "semantic/class_map")
        self.pub_confidence = self.output_publisher(Image, "semantic/confidence")
        self.pub_overlay = self.output_publisher(Image, "semantic/overlay")

    def process(self, frames: Sequence[InputFrame]) -> None:
        # Optional outputs cost work only while someone listens.
        want_conf = self.io.publish_confidence and self.pub_confidence.get_subscription_count() > 0
        want_overlay = self.io.publish_overlay and self.pub_overlay.get_subscription_count() > 0
        results = self.segmenter.segment([f.image for f in frames], with_confidence=want_conf)
        for frame, result in zip(frames, results):
            self.pub_class_map.publish(image_msg(result.class_map, frame.header, "mono8"))
            if result.confidence is not None:
                self.pub_confidence.publish(image_msg(result.confidence, frame.header, "mono8"))
            if want_overlay:
                overlay = self.segmenter.overlay(frame.image, result, self.io.overlay_alpha)
                self.pub_overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.published(frame)

    def diagnostic_values(self) -> dict[str, Any]:
        backend = self.segmenter.backend
        return {
            "model": self.segmenter.config.model,
            "backend": backend.name,
            "device": backend.device,
            "precision": backend.precision,
            "checkpoint": self.segmenter.config.checkpoint or "untrained",
        }


def main(args: list[str] | None = None) -> int:
    return run_node(SemanticSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
