"""The ONNX Runtime instance (Mask R-CNN) backend, and the choice of an instance backend.

:class:`OnnxRuntimeInstanceBackend` runs the three split graphs that
:mod:`seg_perception.export.instance` exports, in ONNX Runtime (CPU), with torchvision's
anchor decoding, NMS and RoIAlign between them
(:func:`~seg_perception.inference.instance_split.split_detect`), on the same torch model
object as the segmenter, so every threshold the segmenter sets on it applies. Like every
:class:`~seg_perception.inference.base.InstanceBackend` it turns a batch of uint8 RGB frames
at the model input size into raw :class:`~seg_perception.inference.base.Detections` per frame
(roi masks).

:func:`create_instance_backend` chooses the backend an
:class:`~seg_perception.pipeline.instance.InstanceSegmenter` detects through (the factory
calls it): ``torch`` (:class:`~seg_perception.inference.torch_backend.TorchInstanceBackend`,
eager, the segmenter's default), ``onnxruntime``, ``tensorrt``
(:class:`~seg_perception.inference.tensorrt_instance.TensorRTInstanceBackend`, the split
engines) or ``auto`` (TensorRT where valid engines exist and can run, else ONNX Runtime where
matching split graphs exist and the device is the CPU, else torch).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from seg_perception.config.choices import BACKEND_CHOICES, PRECISION_CHOICES
from seg_perception.errors import BackendError, ConfigError
from seg_perception.inference.artifacts import ort_optimizations_safe, read_onnx_metadata
from seg_perception.inference.base import Detections, InstanceBackend
from seg_perception.inference.child_export import export_in_child
from seg_perception.inference.instance_split import PARTS, instance_onnx_matches, ort_runners, split_detect
from seg_perception.inference.torch_backend import TorchInstanceBackend

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

log = logging.getLogger(__name__)


def _check_frames(frames: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
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
    paths: part -> ONNX file (:func:`.instance_split.instance_artifact_paths`).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: MaskRCNN,
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
            # Broad on purpose: onnxruntime's own (untyped) errors become a BackendError.
            raise BackendError(f"ONNX Runtime cannot load the instance split graphs: {err}") from err
        self.model = model.eval()
        self.paths = {part: Path(paths[part]) for part in PARTS}
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.precision = precision
        self.device = "cpu"
        log.info("onnxruntime: instance split graphs %s (%s) on cpu", self.paths["backbone"].name, precision)

    def detect(self, frames: npt.NDArray[np.uint8]) -> list[Detections]:
        try:
            return split_detect(self.model, _check_frames(frames, self.input_size), self._runners)
        except BackendError:
            raise
        except Exception as err:
            # Broad on purpose: onnxruntime's own (untyped) errors become a BackendError.
            raise BackendError(f"onnxruntime instance inference failed: {err}") from err

    @classmethod
    def from_model(
        cls,
        model: MaskRCNN,
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
            export_in_child("instance", model, {part: Path(p) for part, p in paths.items()}, input_size, precision)
            return cls(model, paths, input_size, precision)
        with tempfile.TemporaryDirectory(prefix="seg_inst_ort_") as tmp:  # sessions keep the graphs in memory
            tmp_paths = {part: Path(tmp) / f"instance_{precision}.{part}.onnx" for part in PARTS}
            export_in_child("instance", model, tmp_paths, input_size, precision)
            return cls(model, tmp_paths, input_size, precision)


# The same choices as semantic models: tensorrt means the three split engines (module docstring).
INSTANCE_BACKENDS = BACKEND_CHOICES


def create_instance_backend(
    backend: str,
    model: MaskRCNN,
    input_size: tuple[int, int],
    precision: str,
    paths: Mapping[str, str | Path] | None,
    device: str = "cpu",
    engines: Mapping[str, str | Path] | None = None,
) -> InstanceBackend:
    """``torch`` | ``onnxruntime`` | ``tensorrt`` | ``auto``: TensorRT where valid split
    engines exist at ``engines`` and a TensorRT runtime can run them on ``device`` (checked by
    a warm-up run), else ONNX Runtime where the split graphs at ``paths`` fit and the device
    is the CPU, else torch (fp32 only); every choice and skip is logged."""
    if backend not in INSTANCE_BACKENDS:
        raise ConfigError(f"instance backend {backend!r} is not one of {list(INSTANCE_BACKENDS)}")
    if backend == "onnxruntime" and device.startswith("cuda"):
        log.warning("instance backend onnxruntime runs its split graphs on the CPU (CUDA providers not wired yet)")
    if backend == "torch":
        return TorchInstanceBackend(model, input_size, device)
    if backend == "onnxruntime":
        return OnnxRuntimeInstanceBackend.from_model(model, input_size, precision, paths)
    if backend == "tensorrt":
        return _tensorrt(model, input_size, precision, device, engines, paths)
    skipped = []
    trt_reason = _tensorrt_problem(engines, device)
    if trt_reason is None:
        try:
            chosen = _tensorrt(model, input_size, precision, device, engines, paths)
            log.info("instance backend auto: using tensorrt on %s (%s)", chosen.device, precision)
            return chosen
        except BackendError as err:
            trt_reason = str(err)
    skipped.append(f"tensorrt: {trt_reason}")
    reason = "no split graphs" if paths is None else instance_onnx_matches(paths, model, precision, input_size)
    if reason is None and device == "cpu":
        try:
            chosen = OnnxRuntimeInstanceBackend(model, paths or {}, input_size, precision)
            log.info("instance backend auto: using onnxruntime (%s); skipped %s", precision, "; ".join(skipped))
            return chosen
        except BackendError as err:
            reason = str(err)
    skipped.append(f"onnxruntime: {reason or 'device is not cpu'}")
    if precision != "fp32":
        raise BackendError(f"instance backend auto: no backend can run {precision}: {'; '.join(skipped)}")
    log.info("instance backend auto: using torch on %s; skipped %s", device, "; ".join(skipped))
    return TorchInstanceBackend(model, input_size, device)


def _tensorrt_problem(engines: Mapping[str, str | Path] | None, device: str) -> str | None:
    """Why ``auto`` does not try the TensorRT engines (None: it tries them)."""
    from seg_perception.inference.engine_policy import tensorrt_runtime_problem

    if engines is None or not all(Path(engines[part]).is_file() for part in PARTS):
        return "no engines built"
    return tensorrt_runtime_problem(device)


def _tensorrt(
    model: MaskRCNN,
    input_size: tuple[int, int],
    precision: str,
    device: str,
    engines: Mapping[str, str | Path] | None,
    onnx: Mapping[str, str | Path] | None,
) -> InstanceBackend:
    from seg_perception.inference.tensorrt_instance import TensorRTInstanceBackend

    if engines is None:
        raise BackendError("instance backend tensorrt needs engines: seg-perception build-engine --model instance")
    present = {part: p for part, p in (onnx or {}).items() if Path(p).is_file()}
    backend = TensorRTInstanceBackend(model, engines, input_size, precision, device, present or None)
    try:
        backend.warm_up()  # a broken engine fails here, not on the serving thread
    except BackendError:
        raise
    except Exception as err:
        # Broad on purpose: TensorRT and CUDA raise their own (untyped) errors.
        raise BackendError(f"the TensorRT instance engines fail their warm-up run: {err}") from err
    return backend
