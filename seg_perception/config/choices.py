"""The names a configuration may choose from, in one place.

Backend, device, precision, engine policy and QoS names, and the model architectures with
the input-size multiple each needs. The configuration records validate against these; the
layers that implement them (``models``, ``inference``) register their implementations under
exactly these names, and their tests check that the two agree.
"""

from __future__ import annotations

from seg_perception.errors import ConfigError

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICE_CHOICES = ("auto", "cuda", "cpu")
PRECISION_CHOICES = ("fp32", "fp16", "int8")
# auto | build_in_background | require | never: see seg_perception.inference.engine_policy
ENGINE_POLICIES = ("auto", "build_in_background", "require", "never")
RELIABILITY_CHOICES = ("reliable", "best_effort")
INPUT_RELIABILITY_CHOICES = ("auto", *RELIABILITY_CHOICES)  # auto: follow the camera's publishers

# architecture -> the multiple input height and width must be of (DeepLab: the output stride)
SEMANTIC_MODELS: dict[str, int] = {"deeplabv3_mobilenet_v3_large": 16, "deeplabv3_resnet50": 8}
# architecture -> the multiple GeneralizedRCNNTransform pads batches to (other sizes are padded)
INSTANCE_MODELS: dict[str, int] = {"maskrcnn_resnet50_fpn_v2": 32, "maskrcnn_mobilenet_v3_large_fpn": 32}


def semantic_model(name: str) -> int:
    """The size divisor of a semantic architecture; ConfigError naming the known ones."""
    try:
        return SEMANTIC_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown semantic model {name!r}; expected one of {sorted(SEMANTIC_MODELS)}") from None


def instance_model(name: str) -> int:
    """The size divisor of an instance architecture; ConfigError naming the known ones."""
    try:
        return INSTANCE_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown instance model {name!r}; expected one of {sorted(INSTANCE_MODELS)}") from None
