"""The TensorRT instance (Mask R-CNN) backend: the three split engines that
``build-engine --model instance`` writes, with torchvision's anchor decoding, NMS, RoIAlign
and mask selection between them (:func:`~.instance_split.split_detect`) on the same GPU and
stream: frames go up once, detections come down once, nothing else crosses to the host.

Before anything is deserialised the sidecars are checked against the model being served
(:func:`instance_engines_problem`: tensor names, input size, RoI feature shapes, class
count), then each engine as every TensorRT engine is (:class:`~.tensorrt_engine.TensorRTEngine`).
RoI batches larger than an engine's profile (more proposals than the RPN settings and batch
size it was built for) are run in chunks, never refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.config.choices import PRECISION_CHOICES
from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import INPUT_NAME, read_sidecar
from seg_perception.inference.base import Detections
from seg_perception.inference.instance_split import PARTS, ROI_INPUT, GraphRunner, graph_io, split_detect
from seg_perception.inference.tensorrt_engine import TensorRTEngine

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

log = logging.getLogger(__name__)


def _roi_size(pool: Any) -> tuple[int, int]:
    size = pool.output_size
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def expected_bindings(model: MaskRCNN, input_size: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """part -> what its engine must bind for ``model`` at ``input_size`` (H, W): input and
    output names in graph order, and the input's fixed (non-batch) dimensions."""
    io = graph_io(model)
    channels = int(model.backbone.out_channels)
    heads = model.roi_heads
    fixed = {
        "backbone": [int(input_size[0]), int(input_size[1]), 3],
        "box_head": [channels, *_roi_size(heads.box_roi_pool)],
        "mask_head": [channels, *_roi_size(heads.mask_roi_pool)],
    }
    return {part: {"inputs": io[part][0], "outputs": io[part][1], "fixed": fixed[part]} for part in PARTS}


def instance_engines_problem(
    sidecars: Mapping[str, Mapping[str, Any]], model: MaskRCNN, input_size: tuple[int, int]
) -> str | None:
    """Why the engines whose sidecars are ``sidecars`` (part -> sidecar dict) cannot serve
    ``model`` at ``input_size`` (None: they can): missing part, other tensor names, another
    input size or RoI feature shape, another class count, profiles that do not start at 1."""
    want = expected_bindings(model, input_size)
    classes = int(model.roi_heads.box_predictor.cls_score.out_features)
    for part in PARTS:
        side = sidecars.get(part)
        if side is None:
            return f"no {part} engine"
        inputs = [i["name"] for i in side.get("inputs", [])]
        outputs = [o["name"] for o in side.get("outputs", [])]
        if inputs != want[part]["inputs"] or sorted(outputs) != sorted(want[part]["outputs"]):
            return (
                f"the {part} engine binds {inputs} -> {outputs}, the model needs "
                f"{want[part]['inputs']} -> {want[part]['outputs']}"
            )
        lo, hi = side["inputs"][0]["min"], side["inputs"][0]["max"]
        if list(hi[1:]) != want[part]["fixed"] or list(lo[1:]) != want[part]["fixed"]:
            return f"the {part} engine takes {hi[1:]} per item, the model needs {want[part]['fixed']}"
        if lo[0] != 1 or hi[0] < 1:
            return f"the {part} engine's profile is {lo[0]}..{hi[0]} items; it must start at 1"
        shapes = {o["name"]: o.get("shape", []) for o in side["outputs"]}
        logits = "class_logits" if part == "box_head" else "mask_logits" if part == "mask_head" else None
        if logits is not None and len(shapes[logits]) > 1 and shapes[logits][1] not in (-1, classes):
            return f"the {part} engine predicts {shapes[logits][1]} classes, the model {classes}"
    return None


class TensorRTInstanceBackend:
    """The three split engines on a CUDA device; ``model`` supplies anchors, box coders, RoI
    poolers and thresholds (the segmenter's, so its settings apply), ``engines``: part ->
    engine file, ``onnx`` (optional): part -> the graph each engine must come from."""

    name = "tensorrt"

    def __init__(
        self,
        model: MaskRCNN,
        engines: Mapping[str, str | Path],
        input_size: tuple[int, int],
        precision: str = "fp32",
        device: str = "cuda",
        onnx: Mapping[str, str | Path] | None = None,
    ) -> None:
        if precision not in PRECISION_CHOICES:
            raise BackendError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        paths = {part: Path(engines[part]) for part in PARTS}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise BackendError(
                f"TensorRT instance engines not found: {', '.join(missing)}; build them: "
                f"seg-perception build-engine --model instance --precision {precision}"
            )
        sides = {part: read_sidecar(p) for part, p in paths.items()}
        problem = instance_engines_problem(sides, model, self.input_size)
        if problem is not None:
            raise BackendError(
                f"the TensorRT instance engines do not fit this model: {problem}; rebuild them: "
                f"{sides['backbone'].get('rebuild_command')}"
            )
        self._engines = {
            part: TensorRTEngine(p, device, precision, None if onnx is None else onnx.get(part))
            for part, p in paths.items()
        }
        want = expected_bindings(model, self.input_size)
        for part, engine in self._engines.items():
            if engine.inputs != want[part]["inputs"] or sorted(engine.outputs) != sorted(want[part]["outputs"]):
                raise BackendError(
                    f"{engine.path} binds {engine.inputs} -> {engine.outputs}, not what its sidecar says"
                )
        backbone = self._engines["backbone"]
        self.device = backbone.device
        self.precision = precision
        self.model = model.eval()
        self.max_batch = int(backbone.profile_shape(INPUT_NAME)[2][0])
        self.max_rois = {part: int(self._engines[part].profile_shape(ROI_INPUT)[2][0]) for part in PARTS[1:]}
        dev = torch.device(self.device)
        self._input = torch.empty((self.max_batch, *self.input_size, 3), dtype=torch.uint8, device=dev)
        self._host = torch.empty((self.max_batch, *self.input_size, 3), dtype=torch.uint8).pin_memory()
        self._uploaded = torch.cuda.Event()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        io = graph_io(model)
        self._runners: dict[str, GraphRunner] = {
            "backbone": self._backbone_runner(io["backbone"][1]),
            "box_head": self._roi_runner("box_head", io["box_head"][1]),
            "mask_head": self._roi_runner("mask_head", io["mask_head"][1]),
        }
        self._cache_saved = False
        post_nms = int(model.rpn._post_nms_top_n["testing"])
        if post_nms * self.max_batch > self.max_rois["box_head"]:
            log.info(
                "tensorrt instance: up to %d proposals a batch, the box engine takes %d: large batches run in chunks",
                post_nms * self.max_batch,
                self.max_rois["box_head"],
            )
        log.info(
            "tensorrt: instance split engines %s (%s, %s %s) on %s, batch <= %d, RoIs <= %s",
            paths["backbone"].name,
            precision,
            backbone.library.name,
            backbone.library.version,
            self.device,
            self.max_batch,
            self.max_rois,
        )

    def _backbone_runner(self, outputs: Sequence[str]) -> GraphRunner:
        engine = self._engines["backbone"]

        def run(frames: torch.Tensor) -> Sequence[torch.Tensor]:
            n = frames.shape[0]
            host, inp = self._host[:n], self._input[:n]
            self._uploaded.synchronize()  # the previous upload has left the pinned buffer
            host.copy_(frames)
            inp.copy_(host, non_blocking=True)  # the one upload, on the current stream
            self._uploaded.record()
            out = engine.execute({INPUT_NAME: inp})
            return [out[name].float() for name in outputs]

        return run

    def _roi_runner(self, part: str, outputs: Sequence[str]) -> GraphRunner:
        engine, limit = self._engines[part], self.max_rois[part]
        dtype = engine.dtype(ROI_INPUT)

        def run(rois: torch.Tensor) -> Sequence[torch.Tensor]:
            x = rois.to(device=self.device, dtype=dtype).contiguous()
            pieces = [engine.execute({ROI_INPUT: x[i : i + limit]}) for i in range(0, x.shape[0], limit)]
            return [torch.cat([p[name] for p in pieces]).float() for name in outputs]

        return run

    def detect(self, frames: npt.NDArray[np.uint8]) -> list[Detections]:
        """(N, H, W, 3) uint8 RGB at the model input size -> raw detections per frame (CPU)."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BackendError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if tuple(frames.shape[1:3]) != self.input_size:
            raise BackendError(
                f"frames are {frames.shape[2]}x{frames.shape[1]}, the engines take "
                f"{self.input_size[1]}x{self.input_size[0]} (width x height)"
            )
        found: list[Detections] = []
        with torch.cuda.device(torch.device(self.device)):
            for start in range(0, len(frames), self.max_batch):
                found += split_detect(self.model, frames[start : start + self.max_batch], self._runners)
        if not self._cache_saved:  # TensorRT-RTX: the kernels the first batch compiled, for the next start
            self._cache_saved = True
            for engine in self._engines.values():
                engine.save_runtime_cache()
        return found

    def warm_up(self) -> None:
        """One blank batch: kernels compiled and a broken engine found now, off the serving path."""
        self.detect(np.zeros((1, *self.input_size, 3), np.uint8))
