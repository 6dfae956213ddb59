"""Output groups: the publishers of one core's results, shared by the single-model nodes
and the combined node. Optional outputs are built only while someone subscribes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_msgs.msg import Image

from ..pipeline.instance import InstanceResult, InstanceSegmenter
from ..pipeline.semantic import SemanticResult, SemanticSegmenter
from .detections import DETECTIONS_AVAILABLE, detections_msg
from .messages import image_msg

if TYPE_CHECKING:
    from .node_base import InputFrame, SegmentationNodeBase


class SemanticOutputs:
    def __init__(self, node: SegmentationNodeBase, segmenter: SemanticSegmenter) -> None:
        self.node, self.segmenter = node, segmenter
        self.class_map = node.output_publisher(Image, "semantic/class_map")
        self.confidence = node.output_publisher(Image, "semantic/confidence")
        self.overlay = node.output_publisher(Image, "semantic/overlay")

    def wants_confidence(self) -> bool:
        return self.node.io.publish_confidence and self.confidence.get_subscription_count() > 0

    def publish(self, frame: InputFrame, result: SemanticResult) -> None:
        self.class_map.publish(image_msg(result.class_map, frame.header, "mono8"))
        if result.confidence is not None:
            self.confidence.publish(image_msg(result.confidence, frame.header, "mono8"))
        if self.node.io.publish_overlay and self.overlay.get_subscription_count() > 0:
            overlay = self.segmenter.overlay(frame.image, result, self.node.io.overlay_alpha)
            self.overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.node.count_overlay()


class InstanceOutputs:
    def __init__(self, node: SegmentationNodeBase, segmenter: InstanceSegmenter) -> None:
        self.node, self.segmenter = node, segmenter
        self.instance_map = node.output_publisher(Image, "instance/instance_map")
        self.overlay = node.output_publisher(Image, "instance/overlay")
        self.detections = None
        if DETECTIONS_AVAILABLE:
            from vision_msgs.msg import Detection2DArray

            self.detections = node.output_publisher(Detection2DArray, "instance/detections")

    def publish(self, frame: InputFrame, result: InstanceResult) -> None:
        self.instance_map.publish(image_msg(result.instance_map, frame.header, "mono16"))
        if self.detections is not None:
            self.detections.publish(detections_msg(frame.header, result.instances))
        if self.node.io.publish_overlay and self.overlay.get_subscription_count() > 0:
            overlay = self.segmenter.overlay(frame.image, result, self.node.io.overlay_alpha)
            self.overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.node.count_overlay()
