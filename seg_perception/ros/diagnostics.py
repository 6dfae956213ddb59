"""/diagnostics statuses for a segmentation node: one for the node, one per camera."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, Any]
) -> DiagnosticStatus:
    """One status; values become strings (floats with 3 decimals, bools as True/False)."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


# DiagnosticStatus levels are `byte` fields: bytes objects in rclpy.
OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
