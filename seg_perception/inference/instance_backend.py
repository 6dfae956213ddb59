"""Instance (Mask R-CNN) backends: torch eager, and the ONNX Runtime split graphs.

An instance backend turns a batch of uint8 RGB frames at the model input size into raw
detections per frame (:class:`seg_perception.pipeline.instance.Detections`, roi masks). The
ONNX Runtime backend runs the three exported graphs (see :mod:`.instance_export`) with
torchvision's anchor decoding, NMS and RoIAlign between them, on the same torch model object
as the segmenter, so every threshold the segmenter sets on it applies.

An :class:`~seg_perception.pipeline.instance.InstanceSegmenter` detects through its ``backend``
(eager torch by default); :func:`create_instance_backend` chooses one for the factory
(``auto``: ONNX Runtime where matching split graphs exist, else torch).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seg_perception.errors import BackendError, ConfigError
from seg_perception.export.instance import (
    PARTS,
    export_instance_onnx,
    instance_onnx_matches,
    ort_runners,
    split_detect,
)
from seg_perception.export.onnx import ort_optimizations_safe, read_onnx_metadata
from seg_perception.inference.base import PRECISION_CHOICES
from seg_perception.pipeline.instance import Detections, TorchInstanceBackend

log = logging.getLogger(__name__)

INSTANCE_BACKEND_CHOICES = ("auto", "onnxruntime", "torch")


def _check_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise BackendError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if tuple(frames.shape[1:3]) != tuple(size):
        raise BackendError(
            f"frames are {frames.shape[2]}x{frames.shape[1]}, the model takes {size[1]}x{size[0]} (width x height)"
        )
    return frames


class OnnxRuntimeInstanceBackend:
    """The three split graphs in ONNX Runtime (CPU), torchvision ops between them.

    model: the torch Mask R-CNN the graphs were exported from (its anchor generator, box
    coders, RoI poolers and thresholds are used; its dense layers are not run).
    paths: part -> ONNX file (:func:`.instance_export.instance_artifact_paths`).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: nn.Module,
        paths: Mapping[str, str | Path],
        input_size: tuple[int, int],
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        if precision not in PRECISION_CHOICES:
            raise BackendError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
        reason = instance_onnx_matches(paths, model, precision, input_size)
        if reason is not None:
            raise BackendError(
                f"onnxruntime cannot use the instance split graphs: {reason}; export them: "
                f"seg-perception export --model instance --precision {precision}"
            )
        optimize = {part: ort_optimizations_safe(read_onnx_metadata(paths[part])) for part in PARTS}
        try:
            self._runners = ort_runners(paths, optimize, threads)
        except BackendError:
            raise
        except Exception as err:
            raise BackendError(f"ONNX Runtime cannot load the instance split graphs: {err}") from err
        self.model = model.eval()
        self.paths = {part: Path(paths[part]) for part in PARTS}
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.precision = precision
        self.device = "cpu"
        log.info("onnxruntime: instance split graphs %s (%s) on cpu", self.paths["backbone"].name, precision)

    def detect(self, frames: np.ndarray) -> list[Detections]:
        try:
            return split_detect(self.model, _check_frames(frames, self.input_size), self._runners)
        except BackendError:
            raise
        except Exception as err:
            raise BackendError(f"onnxruntime instance inference failed: {err}") from err

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        input_size: tuple[int, int],
        precision: str = "fp32",
        paths: Mapping[str, str | Path] | None = None,
    ) -> OnnxRuntimeInstanceBackend:
        """Serve ``model``: graphs at ``paths`` exported from the same weights are used, others
        refused (never overwritten); missing ones are exported (verified) there in fp32/fp16,
        or to a temporary folder without ``paths``. int8 needs calibration frames: refused."""
        if paths is not None and any(Path(p).exists() for p in paths.values()):
            return cls(model, paths, input_size, precision)
        if precision == "int8":
            raise BackendError(
                "onnxruntime int8 needs int8 split graphs exported with calibration frames; export "
                "them: seg-perception export --model instance --precision int8 --calib FRAMES"
            )
        if paths is not None:
            export_instance_onnx(model, paths, input_size, precision)
            return cls(model, paths, input_size, precision)
        with tempfile.TemporaryDirectory(prefix="seg_inst_ort_") as tmp:  # sessions keep the graphs in memory
            tmp_paths = {part: Path(tmp) / f"instance_{precision}.{part}.onnx" for part in PARTS}
            export_instance_onnx(model, tmp_paths, input_size, precision)
            return cls(model, tmp_paths, input_size, precision)


def create_instance_backend(
    backend: str,
    model: nn.Module,
    input_size: tuple[int, int],
    precision: str,
    paths: Mapping[str, str | Path] | None,
    device: str = "cpu",
) -> Any:
    """``torch`` | ``onnxruntime`` | ``auto`` (ONNX Runtime where the split graphs at ``paths``
    exist and fit; else torch, logged)."""
    if backend not in INSTANCE_BACKEND_CHOICES:
        raise ConfigError(f"instance backend {backend!r} is not one of {list(INSTANCE_BACKEND_CHOICES)}")
    if backend == "onnxruntime" and device.startswith("cuda"):
        log.warning("instance backend onnxruntime runs its split graphs on the CPU (CUDA providers not wired yet)")
    if backend == "torch":
        return TorchInstanceBackend(model, input_size, device)
    if backend == "onnxruntime":
        return OnnxRuntimeInstanceBackend.from_model(model, input_size, precision, paths)
    reason = "no split graphs" if paths is None else instance_onnx_matches(paths, model, precision, input_size)
    if reason is None and device == "cpu":
        try:
            chosen = OnnxRuntimeInstanceBackend(model, paths or {}, input_size, precision)
            log.info("instance backend auto: using onnxruntime (%s)", precision)
            return chosen
        except BackendError as err:
            reason = str(err)
    if precision != "fp32":
        raise BackendError(f"instance backend auto: no backend can run {precision}: {reason}")
    log.info("instance backend auto: using torch on %s (onnxruntime: %s)", device, reason or "device is not cpu")
    return TorchInstanceBackend(model, input_size, device)
