"""Inference backends behind one interface (see :mod:`.base`)."""

from seg_perception.inference.base import (
    BACKEND_CHOICES,
    DEVICE_CHOICES,
    PRECISION_CHOICES,
    SemanticBackend,
    SemanticOutput,
)
from seg_perception.inference.registry import create_semantic_backend

__all__ = [
    "BACKEND_CHOICES",
    "DEVICE_CHOICES",
    "PRECISION_CHOICES",
    "SemanticBackend",
    "SemanticOutput",
    "create_semantic_backend",
]
