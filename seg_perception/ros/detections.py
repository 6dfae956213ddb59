"""instance/detections as vision_msgs/Detection2DArray, only where vision_msgs is installed
(it is optional: not on PyPI, and not every vehicle image carries it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from std_msgs.msg import Header

from seg_perception.pipeline.detection_boxes import detection_boxes

if TYPE_CHECKING:
    from seg_perception.pipeline.instance import InstanceResult


try:
    from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

    DETECTIONS_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the ROS install
    DETECTIONS_AVAILABLE = False


def detections_msg(header: Header, result: InstanceResult) -> Any:
    """One Detection2D per instance, both headers = the camera frame's ``header``.

    ``id``: its instance_map value (label_id * 1000 + k); ``results``: one hypothesis,
    ``class_id`` = the label name (the class of ``id // 1000`` in the label set) and its score;
    ``bbox``: the box of its pixels in the published instance map (pipeline/detection_boxes.py).
    """
    out = Detection2DArray(header=header)
    for inst, (cx, cy, sx, sy) in zip(result.instances, detection_boxes(result), strict=True):
        det = Detection2D(header=header, id=str(inst.value))
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = inst.name
        hyp.hypothesis.score = float(inst.score)
        det.results.append(hyp)
        box = BoundingBox2D()
        box.center.position.x, box.center.position.y = cx, cy
        box.size_x, box.size_y = sx, sy
        det.bbox = box
        out.detections.append(det)
    return out
