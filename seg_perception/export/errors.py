"""Errors of making artifacts (ONNX exports, engine builds): both are BackendErrors, so the
command line's one error boundary prints them as one line and exits 2."""

from __future__ import annotations

from seg_perception.errors import BackendError


class OnnxExportError(BackendError):
    """An ONNX export failed or did not pass its verification."""


class EngineBuildError(BackendError):
    """An engine could not be built."""
