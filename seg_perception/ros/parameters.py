"""Declare a node's parameters up front from its config file, read-only, with descriptors."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from seg_perception.errors import ConfigError


def declare_from_defaults(node: Node, defaults: dict[str, Any]) -> dict[str, Any]:
    """Declare every key of ``defaults`` (overrides from --params-file / -p apply) and return
    the effective values. Values of the wrong type are one :class:`ConfigError`, raised after
    every parameter was tried (so a managed node can report it from configure)."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, default in defaults.items():
        descriptor = ParameterDescriptor(read_only=True, description=f"see config file; default {default!r}")
        try:
            if isinstance(default, list) and all(isinstance(v, str) for v in default):
                values[name] = _declare_string_array(node, name, default, descriptor)
            else:
                values[name] = node.declare_parameter(name, default, descriptor).value
        except (ParameterException, TypeError, ValueError) as err:
            errors.append(f"parameter {name}: {err}")
    if errors:
        raise ConfigError("; ".join(errors))
    return values


def _declare_string_array(node: Node, name: str, default: list[str], descriptor: ParameterDescriptor) -> list[str]:
    # rclpy infers BYTE_ARRAY from an empty list default (then rejects ['front']), and an empty
    # list in YAML (`cameras: []`, `-p cameras:=[]`) arrives as "not set". So declare the type
    # alone (statically typed, since Galactic) and fall back to the default when unset.
    value: list[str] | None = node.declare_parameter(name, Parameter.Type.STRING_ARRAY, descriptor).value
    return list(default) if value is None else list(value)
