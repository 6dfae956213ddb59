"""Parameters of an offline run: a node's defaults, a parameter file over them, ``-p`` pairs over both.

The command line, the demo and the benchmarks run the cores on the same parameters a node
would get from ``config/<node>.yaml``, ``--params-file`` and ``-p``; this module is that merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from seg_perception.config.records import load_param_file, node_defaults
from seg_perception.errors import ConfigError


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs, values parsed as YAML scalars (so 256 is an int, true a bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"-p expects key=value, got {pair!r}")
        # An empty value is the empty string (YAML would read it as None).
        out[key] = yaml.safe_load(value) if value else ""
    return out


def node_params(node: str, param_file: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """``config/<node>.yaml`` (node = semantic | instance | perception), then ``param_file``
    (ROS format) over it, then the ``key=value`` ``overrides`` over both."""
    params = node_defaults(node)
    if param_file:
        params.update(load_param_file(param_file))
    params.update(parse_overrides(overrides))
    return params
