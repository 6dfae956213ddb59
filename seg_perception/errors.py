"""Errors of the pipeline core.

Every error the core raises on purpose derives from :class:`SegPerceptionError`, so the CLI
and the nodes have one thing to catch at their boundary. Messages say what was expected and
what arrived.
"""

from __future__ import annotations


class SegPerceptionError(Exception):
    """Base of every error raised on purpose by seg_perception."""


class ConfigError(SegPerceptionError):
    """A parameter, config file or label set is invalid."""


class ImageError(SegPerceptionError):
    """An image message cannot be decoded (encoding, size, payload)."""


class CheckpointError(SegPerceptionError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class BackendError(SegPerceptionError):
    """An inference backend is unavailable or failed."""


class BagError(SegPerceptionError):
    """A bag cannot be opened or read (missing, corrupt, truncated), or lacks a topic."""
