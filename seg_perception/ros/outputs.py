"""Output groups: the publishers of one camera's results, shared by the single-model nodes
and the combined node. Optional outputs are built only while someone subscribes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rclpy.publisher import Publisher
from sensor_msgs.msg import Image

from seg_perception.io.image import to_rgb
from seg_perception.ros.detections import DETECTIONS_AVAILABLE, detections_msg
from seg_perception.ros.messages import image_msg

if TYPE_CHECKING:  # types only: a semantic node never loads the instance model's code (torchvision detection)
    from seg_perception.pipeline.instance import InstanceResult, InstanceSegmenter
    from seg_perception.pipeline.perception import FrameResult, PerceptionCore
    from seg_perception.pipeline.semantic import SemanticResult, SemanticSegmenter
    from seg_perception.ros.channels import InputFrame
    from seg_perception.ros.node_base import SegmentationNodeBase


class SemanticOutputs:
    """``<prefix>semantic/{class_map,confidence,overlay}`` of one camera."""

    def __init__(self, node: SegmentationNodeBase, segmenter: SemanticSegmenter, prefix: str = "") -> None:
        self.node, self.segmenter = node, segmenter
        self.class_map = node.output_publisher(Image, f"{prefix}semantic/class_map")
        self.confidence = node.output_publisher(Image, f"{prefix}semantic/confidence")
        self.overlay = node.output_publisher(Image, f"{prefix}semantic/overlay")

    @property
    def publishers(self) -> list[Publisher[Any]]:
        return [self.class_map, self.confidence, self.overlay]

    def wants_confidence(self) -> bool:
        return self.node.io.publish_confidence and self.confidence.get_subscription_count() > 0

    def publish(self, frame: InputFrame, result: SemanticResult) -> None:
        self.class_map.publish(image_msg(result.class_map, frame.header, "mono8"))
        # The batch computes confidence when any of its cameras wants it; publish only here.
        if result.confidence is not None and self.wants_confidence():
            self.confidence.publish(image_msg(result.confidence, frame.header, "mono8"))
        if self.node.io.publish_overlay and self.overlay.get_subscription_count() > 0:
            overlay = self.segmenter.overlay(frame.image, result, self.node.io.overlay_alpha)
            self.overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.node.count_overlay()


class InstanceOutputs:
    """``<prefix>instance/{instance_map,overlay,detections}`` of one camera."""

    def __init__(self, node: SegmentationNodeBase, segmenter: InstanceSegmenter, prefix: str = "") -> None:
        self.node, self.segmenter = node, segmenter
        self.instance_map = node.output_publisher(Image, f"{prefix}instance/instance_map")
        self.overlay = node.output_publisher(Image, f"{prefix}instance/overlay")
        self.detections = None
        if DETECTIONS_AVAILABLE:
            from vision_msgs.msg import Detection2DArray

            self.detections = node.output_publisher(Detection2DArray, f"{prefix}instance/detections")

    @property
    def publishers(self) -> list[Publisher[Any]]:
        return [self.instance_map, self.overlay, *([self.detections] if self.detections is not None else [])]

    def publish(self, frame: InputFrame, result: InstanceResult) -> None:
        self.instance_map.publish(image_msg(result.instance_map, frame.header, "mono16"))
        # Optional output: its boxes are measured on the map, so only for listeners.
        if self.detections is not None and self.detections.get_subscription_count() > 0:
            self.detections.publish(detections_msg(frame.header, result))
        if self.node.io.publish_overlay and self.overlay.get_subscription_count() > 0:
            overlay = self.segmenter.overlay(frame.image, result, self.node.io.overlay_alpha)
            self.overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.node.count_overlay()


class PerceptionOutputs:
    """Both models' outputs of one camera plus ``<prefix>panoptic/panoptic_map`` and
    ``<prefix>panoptic/overlay`` (rendered only while subscribed)."""

    def __init__(self, node: SegmentationNodeBase, core: PerceptionCore, prefix: str = "") -> None:
        assert core.semantic is not None and core.instance is not None
        self.node, self.core = node, core
        self.semantic = SemanticOutputs(node, core.semantic, prefix)
        self.instance = InstanceOutputs(node, core.instance, prefix)
        self.panoptic = node.output_publisher(Image, f"{prefix}panoptic/panoptic_map")
        self.panoptic_overlay = node.output_publisher(Image, f"{prefix}panoptic/overlay")

    @property
    def publishers(self) -> list[Publisher[Any]]:
        return [*self.semantic.publishers, *self.instance.publishers, self.panoptic, self.panoptic_overlay]

    def publish(self, frame: InputFrame, result: FrameResult) -> None:
        assert result.semantic is not None and result.instance is not None and result.panoptic is not None
        self.semantic.publish(frame, result.semantic)
        self.instance.publish(frame, result.instance)
        self.panoptic.publish(image_msg(result.panoptic, frame.header, "mono16"))
        if self.node.io.publish_overlay and self.panoptic_overlay.get_subscription_count() > 0:
            overlay = self.core.panoptic_overlay(
                to_rgb(frame.image), result.panoptic, result.instance, self.node.io.overlay_alpha
            )
            self.panoptic_overlay.publish(image_msg(overlay, frame.header, "rgb8"))
            self.node.count_overlay()
