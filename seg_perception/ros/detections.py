"""instance/detections as vision_msgs/Detection2DArray, only where vision_msgs is installed
(it is optional: not on PyPI, and not every vehicle image carries it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from std_msgs.msg import Header

if TYPE_CHECKING:
    from seg_perception.pipeline.instance import InstanceRecord


try:
    from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

    DETECTIONS_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the ROS install
    DETECTIONS_AVAILABLE = False


def detections_msg(header: Header, instances: Sequence[InstanceRecord]) -> Any:
    """One Detection2D per instance: ``id`` = its instance_map value, class name and score in
    ``results``, the detector's box as centre + size (vision_msgs >= 4, Humble and later)."""
    out = Detection2DArray(header=header)
    for inst in instances:
        x0, y0, x1, y1 = inst.bbox
        det = Detection2D(header=header, id=str(inst.value))
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = inst.name
        hyp.hypothesis.score = float(inst.score)
        det.results.append(hyp)
        box = BoundingBox2D()
        box.center.position.x = (x0 + x1) / 2.0
        box.center.position.y = (y0 + y1) / 2.0
        box.size_x, box.size_y = float(x1 - x0), float(y1 - y0)
        det.bbox = box
        out.detections.append(det)
    return out
