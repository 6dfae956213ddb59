"""Configuration: parsed once into immutable records, validated with readable errors.

Node defaults live in ``config/<node>.yaml`` (ROS parameter-file format, ``/**`` so any node
name and namespace match). The node declares its ROS parameters with those defaults, so a
node started with no arguments runs on the file, and ``--params-file``/``-p`` override it.
The CLI, replay and benchmarks build the same records from the same files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from seg_perception.config.choices import (
    BACKEND_CHOICES,
    DEVICE_CHOICES,
    ENGINE_POLICIES,
    INPUT_RELIABILITY_CHOICES,
    PRECISION_CHOICES,
    RELIABILITY_CHOICES,
    instance_model,
    semantic_model,
)
from seg_perception.errors import ConfigError
from seg_perception.resources import config_path, resolve


def load_param_file(path: str | Path) -> dict[str, Any]:
    """The ``ros__parameters`` of a ROS parameter file (first node entry, usually ``/**``)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read parameter file {p}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"parameter file {p} is not a mapping")
    for entry in raw.values():
        if isinstance(entry, dict) and isinstance(entry.get("ros__parameters"), dict):
            return flatten(entry["ros__parameters"])
    raise ConfigError(f"parameter file {p} has no 'ros__parameters' section")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameter dicts -> dotted names, as ROS names them (``semantic.model``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def section(params: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The parameters under ``prefix.`` with the prefix removed (``prefix=""``: all of them)."""
    if not prefix:
        return dict(params)
    dotted = prefix + "."
    return {k[len(dotted) :]: v for k, v in params.items() if k.startswith(dotted)}


def node_defaults(node: str) -> dict[str, Any]:
    """Defaults of a node: ``config/<node>.yaml`` (node = semantic | instance | perception)."""
    return load_param_file(config_path(f"{node}.yaml"))


def _choice(params: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = str(params[key])
    if value not in choices:
        raise ConfigError(f"parameter {key}: {value!r} is not one of {list(choices)}")
    return value


def _positive_int(params: Mapping[str, Any], key: str) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"parameter {key}: expected a positive integer, got {value!r}")
    return value


def _fraction(params: Mapping[str, Any], key: str) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"parameter {key}: expected a number in [0, 1], got {value!r}")
    return float(value)


def _require(params: Mapping[str, Any], cls: type) -> None:
    missing = [f.name for f in fields(cls) if f.name not in params]
    if missing:
        raise ConfigError(f"missing parameters: {', '.join(missing)}")


@dataclass(frozen=True)
class SemanticModelConfig:
    """Everything needed to build the semantic core, independent of ROS."""

    model: str
    checkpoint: str  # "" = untrained (seeded) weights
    labels: str
    input_height: int
    input_width: int
    backend: str
    device: str
    precision: str
    engines_dir: str  # where exported ONNX and TensorRT engines are looked up (never downloaded)
    # auto | build_in_background | require | never: see inference/engine_policy.py
    engine_policy: str = "auto"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SemanticModelConfig:
        params = {"engine_policy": "auto", **params}  # optional: parameter files older than the key
        _require(params, cls)
        model = str(params["model"])
        height, width = _input_size(params, semantic_model(model), model)
        return cls(
            model=model,
            checkpoint=_checkpoint(params),
            labels=str(params["labels"]),
            input_height=height,
            input_width=width,
            backend=_choice(params, "backend", BACKEND_CHOICES),
            device=_choice(params, "device", DEVICE_CHOICES),
            precision=_choice(params, "precision", PRECISION_CHOICES),
            engines_dir=str(resolve(str(params["engines_dir"]))),
            engine_policy=_choice(params, "engine_policy", ENGINE_POLICIES),
        )


def _checkpoint(params: Mapping[str, Any], key: str = "checkpoint") -> str:
    checkpoint = str(params[key])
    if not checkpoint:
        return ""
    path = resolve(checkpoint)
    if not path.is_file():
        raise ConfigError(f"parameter {key}: file not found: {path}")
    return str(path)


def _input_size(params: Mapping[str, Any], divisor: int, model: str) -> tuple[int, int]:
    height, width = _positive_int(params, "input_height"), _positive_int(params, "input_width")
    if height % divisor or width % divisor:
        raise ConfigError(
            f"input size {width}x{height} (width x height): {model} needs both to be multiples of {divisor}"
        )
    return height, width


@dataclass(frozen=True)
class InstanceModelConfig:
    """Everything needed to build the instance (Mask R-CNN) core, independent of ROS."""

    model: str
    checkpoint: str  # "" = untrained (seeded) weights
    coco_mapping: str  # "" = our own checkpoint layout; else a mapping name/path for COCO checkpoints
    labels: str
    input_height: int
    input_width: int
    backend: str
    device: str
    precision: str
    score_threshold: float
    mask_threshold: float
    max_instances: int
    engines_dir: str = "engines"  # split ONNX graphs: <engines_dir>/<model>_<H>x<W>_<precision>.<part>.onnx

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> InstanceModelConfig:
        _require(params, cls)
        model = str(params["model"])
        height, width = _input_size(params, instance_model(model), model)
        backend = _choice(params, "backend", BACKEND_CHOICES)
        return cls(
            model=model,
            checkpoint=_checkpoint(params),
            coco_mapping=str(params["coco_mapping"]),
            labels=str(params["labels"]),
            input_height=height,
            input_width=width,
            backend=backend,
            device=_choice(params, "device", DEVICE_CHOICES),
            precision=_choice(params, "precision", PRECISION_CHOICES),
            score_threshold=_fraction(params, "score_threshold"),
            mask_threshold=_fraction(params, "mask_threshold"),
            max_instances=_positive_int(params, "max_instances"),
            engines_dir=str(resolve(str(params.get("engines_dir", "engines")))),
        )


@dataclass(frozen=True)
class NodeIOConfig:
    """Topics, QoS and output switches of a node (plain values; the ros layer maps them)."""

    image_topic: str
    compressed_topic: str  # "" = no compressed subscription
    input_reliability: str  # auto | reliable | best_effort
    input_depth: int
    output_reliability: str
    output_depth: int
    publish_confidence: bool
    publish_overlay: bool
    overlay_alpha: float
    diagnostics_period: float
    cameras: tuple[str, ...]  # camera namespaces; () = one camera, topics directly under the node
    batch_timeout_ms: int  # after a batch's first frame, wait up to this long for the other cameras
    max_batch: int  # frames per inference batch; 0 = one frame of every camera that has one
    lazy: bool  # subscribe to a camera only while one of its outputs has a subscriber
    cpu_threads: int = 0  # threads for CPU inference; 0 = one per core
    input_timeout: float = 3.0  # seconds of silence (or loss) before a camera's status warns

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> NodeIOConfig:
        # optional: parameter files older than these keys
        params = {"cpu_threads": 0, "input_timeout": 3.0, **params}
        _require(params, cls)
        if not str(params["image_topic"]):
            raise ConfigError("parameter image_topic: must not be empty")
        batch_timeout = params["batch_timeout_ms"]
        if isinstance(batch_timeout, bool) or not isinstance(batch_timeout, int) or batch_timeout < 0:
            raise ConfigError(f"parameter batch_timeout_ms: expected milliseconds >= 0, got {batch_timeout!r}")
        max_batch = params["max_batch"]
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 0:
            raise ConfigError(f"parameter max_batch: expected an integer >= 0 (0 = no limit), got {max_batch!r}")
        threads = params["cpu_threads"]
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"parameter cpu_threads: expected an integer >= 0 (0 = one per core), got {threads!r}")
        period = _positive_seconds(params, "diagnostics_period")
        input_timeout = _positive_seconds(params, "input_timeout")
        return cls(
            image_topic=str(params["image_topic"]),
            compressed_topic=str(params["compressed_topic"]),
            input_reliability=_choice(params, "input_reliability", INPUT_RELIABILITY_CHOICES),
            input_depth=_positive_int(params, "input_depth"),
            output_reliability=_choice(params, "output_reliability", RELIABILITY_CHOICES),
            output_depth=_positive_int(params, "output_depth"),
            publish_confidence=bool(params["publish_confidence"]),
            publish_overlay=bool(params["publish_overlay"]),
            overlay_alpha=_fraction(params, "overlay_alpha"),
            diagnostics_period=period,
            cameras=_cameras(params["cameras"]),
            batch_timeout_ms=batch_timeout,
            max_batch=max_batch,
            lazy=_bool(params, "lazy"),
            cpu_threads=threads,
            input_timeout=input_timeout,
        )


def _positive_seconds(params: Mapping[str, Any], key: str) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"parameter {key}: expected seconds > 0, got {value!r}")
    return float(value)


# A relative or absolute ROS namespace: name tokens joined by '/'.
_NAMESPACE = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def _cameras(value: Any) -> tuple[str, ...]:
    """``cameras``: a list of distinct namespaces; None (an unset string array) = []."""
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"parameter cameras: expected a list of namespaces, got {value!r}")
    bad = [v for v in value if not _NAMESPACE.match(v)]
    if bad:
        raise ConfigError(f"parameter cameras: {bad!r} are not valid ROS namespaces (e.g. front, cam/front_left)")
    if len(set(value)) != len(value):
        raise ConfigError(f"parameter cameras: each camera may appear once, got {list(value)!r}")
    return tuple(value)


def _bool(params: Mapping[str, Any], key: str) -> bool:
    value = params[key]
    if not isinstance(value, bool):
        raise ConfigError(f"parameter {key}: expected true or false, got {value!r}")
    return value
