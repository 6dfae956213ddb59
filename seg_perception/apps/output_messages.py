"""A frame's outputs as the messages of the output topics (relative to the camera namespace,
the node contract in DESIGN.md), serialised: what ``replay`` and ``fleet --write-bags`` write
into bags, so both write the same bytes for the same frame."""

from __future__ import annotations

from typing import Any

import numpy as np

from seg_perception.io import bags
from seg_perception.io.bags import DETECTIONS, IMAGE
from seg_perception.pipeline.detection_boxes import detection_boxes
from seg_perception.pipeline.perception import FrameResult

# Output topics under each camera namespace (the node contract, DESIGN.md).
CLASS_MAP = "semantic/class_map"
CONFIDENCE = "semantic/confidence"
INSTANCE_MAP = "instance/instance_map"
DETECTIONS_TOPIC = "instance/detections"
PANOPTIC_MAP = "panoptic/panoptic_map"


def output_messages(header: Any, result: FrameResult) -> list[tuple[str, str, bytes]]:
    """(topic relative to the camera namespace, message type, CDR) of every output the result
    holds, stamped with the input's ``header``: class map (and confidence when computed),
    instance map, detections, panoptic map."""

    def image(pixels: np.ndarray, encoding: str) -> bytes:
        return bags.serialize(bags.image_message(pixels, encoding, 0, "", msg_header=header), IMAGE)

    out = []
    if result.semantic is not None:
        out.append((CLASS_MAP, IMAGE, image(result.semantic.class_map, "mono8")))
        if result.semantic.confidence is not None:
            out.append((CONFIDENCE, IMAGE, image(result.semantic.confidence, "mono8")))
    if result.instance is not None:
        out.append((INSTANCE_MAP, IMAGE, image(result.instance.instance_map, "mono16")))
        msg = bags.detections_message(header, result.instance.instances, detection_boxes(result.instance))
        out.append((DETECTIONS_TOPIC, DETECTIONS, bags.serialize(msg, DETECTIONS)))
    if result.panoptic is not None:
        out.append((PANOPTIC_MAP, IMAGE, image(result.panoptic, "mono16")))
    return out
