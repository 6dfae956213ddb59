"""Declare a node's parameters up front from its config file, read-only, with descriptors."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from ..errors import ConfigError


def declare_from_defaults(node: Node, defaults: dict[str, Any]) -> dict[str, Any]:
    """Declare every key of ``defaults`` (overrides from --params-file / -p apply) and return
    the effective values. A value of the wrong type is a :class:`ConfigError`."""
    values: dict[str, Any] = {}
    for name, default in defaults.items():
        descriptor = ParameterDescriptor(
            read_only=True, description=f"see config file; default {default!r}"
        )
        try:
            param = node.declare_parameter(name, default, descriptor)
        except (ParameterException, TypeError, ValueError) as err:
            raise ConfigError(f"parameter {name}: {err}") from err
        values[name] = param.value
    return values
