"""/diagnostics status for a segmentation node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header


def diagnostic_array(
    header: Header, name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, Any]
) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=header, status=[status])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


# DiagnosticStatus levels are `byte` fields: bytes objects in rclpy.
OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
