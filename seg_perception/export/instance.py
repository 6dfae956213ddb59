"""Mask R-CNN as three ONNX graphs with torch/torchvision ops between them (the "split").

The whole torchvision Mask R-CNN does not parse in TensorRT (data-dependent ``NonZero`` in
the RPN), so only its dense parts become graphs (opset 17, TorchScript exporter):

1. ``backbone`` (:class:`BackboneRpnGraph`): ``frames`` uint8 (N, H, W, 3) RGB at the fixed
   input size -> normalisation, backbone + FPN, RPN head -> the FPN maps ``feat_<level>``
   (N, C, h, w) and per level the RPN ``objectness_<i>`` (N, A, h, w) and ``deltas_<i>``
   (N, 4A, h, w). Batch axis dynamic.
2. ``box_head`` (:class:`BoxHeadGraph`): ``roi_features`` float32 (R, C, 7, 7) -> box head +
   predictor -> ``class_logits`` (R, K), ``box_regression`` (R, 4K). R dynamic.
3. ``mask_head`` (:class:`MaskHeadGraph`): ``roi_features`` (R, C, 14, 14) -> mask head +
   predictor -> ``mask_logits`` (R, K, 28, 28). R dynamic.

Anchor generation and decoding, proposal NMS, MultiScaleRoIAlign, box decoding and NMS of
the detections, and the per-class mask selection stay in torch/torchvision ops
(:func:`seg_perception.inference.instance_split.split_detect`), which run unchanged whichever
executor (torch, ONNX Runtime, TensorRT) runs the graphs. Masks stay per box (28x28, the
``roi`` layout the pipeline pastes).

Every export is verified in ONNX Runtime before anything is written (see
:func:`export_instance_onnx`): full detection through the split path with the ORT graphs
vs the eager torchvision model on generated road scenes, detections matched by IoU, score
and mask agreement. A failed check writes nothing.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from seg_perception.config.choices import PRECISION_CHOICES
from seg_perception.export.errors import OnnxExportError
from seg_perception.export.instance_check import MATCH_GATES, MatchGate, eager_detect, match_detections, scene_frames
from seg_perception.export.instance_graphs import BackboneRpnGraph, BoxHeadGraph, MaskHeadGraph, torch_runners
from seg_perception.export.onnx import export_fp32_graph, require_onnx_tools, save_with_metadata
from seg_perception.export.precision import autocast_fp16, quantize_int8, tool_versions
from seg_perception.inference.artifacts import (
    ort_optimizations_safe,
    weights_fingerprint,
)
from seg_perception.inference.instance_split import (
    INSTANCE_GRAPH_FORMAT,
    PARTS,
    configure_for_size,
    feature_names,
    graph_io,
    ort_runners,
    split_detect,
)

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

log = logging.getLogger(__name__)

_Scalar = TypeVar("_Scalar", bound=np.generic)


def export_instance_onnx(
    model: MaskRCNN,
    paths: Mapping[str, str | Path],
    input_size: tuple[int, int],
    precision: str = "fp32",
    calib_frames: npt.NDArray[np.uint8] | None = None,
    *,
    arch: str = "",
    max_batch: int = 4,
    check_frames: npt.NDArray[np.uint8] | None = None,
    score_threshold: float | None = None,
    gate: MatchGate | None = None,
    int8_high_precision: str = "fp16",
    calibration_method: str = "max",
) -> dict[str, Path]:
    """Export ``model`` (a torchvision Mask R-CNN) as the three split graphs in ``precision``.

    paths: part -> ONNX path
    (:func:`seg_perception.inference.instance_split.instance_artifact_paths`). input_size:
    (H, W), multiples of 32 (the FPN strides; the graphs are fixed-size, batch dynamic). calib_frames: uint8
    (N, H, W, 3) frames from the target domain: required for int8 (each graph is calibrated
    on its own inputs, collected by running the fp32 split path on these frames), AutoCast's
    reference inputs for fp16. check_frames: the verification frames (default: 4 generated
    road scenes). score_threshold: the detection threshold during the check (default: the
    model's ``roi_heads.score_thresh``). gate: override :data:`MATCH_GATES`.

    The check runs the split path with the ONNX Runtime graphs against the eager model and
    refuses (:class:`OnnxExportError`, nothing written) when fewer detections match than
    the gate asks. Returns part -> path written.
    """
    require_onnx_tools()
    if precision not in PRECISION_CHOICES:
        raise OnnxExportError(f"precision {precision!r} is not one of {list(PRECISION_CHOICES)}")
    height, width = (int(v) for v in input_size)
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise OnnxExportError(
            f"instance export needs an input size in multiples of 32, got {width}x{height} (width x height)"
        )
    if precision == "int8" and calib_frames is None:
        raise OnnxExportError(
            "int8 export needs calibration frames (uint8 (N, H, W, 3) at the input size, from the target domain)"
        )
    if set(paths) != set(PARTS):
        raise OnnxExportError(f"paths must name the parts {list(PARTS)}, got {sorted(paths)}")
    gate = gate or MATCH_GATES[precision]
    out_paths = {part: Path(p) for part, p in paths.items()}
    model = configure_for_size(copy.deepcopy(model).to("cpu", torch.float32), (height, width))
    if score_threshold is not None:
        model.roi_heads.score_thresh = float(score_threshold)
    if check_frames is None:
        check_frames = scene_frames((height, width), count=4, seed=20_000)
    check_frames = np.ascontiguousarray(check_frames)
    if check_frames.shape[1:] != (height, width, 3) or check_frames.dtype != np.uint8:
        raise OnnxExportError(
            f"check frames must be uint8 (N, {height}, {width}, 3), got {check_frames.dtype} {check_frames.shape}"
        )
    io = graph_io(model)
    started = time.perf_counter()
    reference = eager_detect(model, check_frames)
    channels = model.backbone.out_channels

    with tempfile.TemporaryDirectory(prefix="seg_inst_onnx_") as tmp:
        work = Path(tmp)
        fp32 = {part: work / f"fp32.{part}.onnx" for part in PARTS}
        graphs = {
            "backbone": BackboneRpnGraph(model),
            "box_head": BoxHeadGraph(model),
            "mask_head": MaskHeadGraph(model),
        }
        dummies = {
            "backbone": torch.from_numpy(check_frames[:1].copy()),
            "box_head": torch.randn(3, channels, 7, 7),
            "mask_head": torch.randn(3, channels, 14, 14),
        }
        for part in PARTS:
            inputs, outputs = io[part]
            axis = "batch" if part == "backbone" else "rois"
            dynamic = {name: {0: axis} for name in [*inputs, *outputs]}
            export_fp32_graph(
                graphs[part].eval(), dummies[part], fp32[part], inputs, outputs, dynamic, f" of {fp32[part].stem}"
            )

        fp32_report = match_detections(
            reference, split_detect(model, check_frames, ort_runners(fp32)), MATCH_GATES["fp32"]
        )
        fp32_gate = MATCH_GATES["fp32"] if precision != "fp32" else gate
        if fp32_report.fraction < fp32_gate.fraction:
            raise OnnxExportError(
                f"fp32 split graphs disagree with torch: {fp32_report} (< {fp32_gate.fraction:.0%}); "
                "refusing to write them"
            )

        final = fp32
        if precision != "fp32":
            source = calib_frames if calib_frames is not None else check_frames
            capture: dict[str, list[torch.Tensor]] = {}
            split_detect(model, source, torch_runners(model), capture)
            inputs_by_part = {
                "backbone": np.ascontiguousarray(source),
                "box_head": torch.cat(capture["box_head"]).numpy(),
                "mask_head": torch.cat(capture.get("mask_head") or [torch.randn(8, channels, 14, 14)]).numpy(),
            }
            final = {part: work / f"{precision}.{part}.onnx" for part in PARTS}
            for part in PARTS:
                data = inputs_by_part[part]
                name = io[part][0][0]
                if precision == "fp16":
                    autocast_fp16(fp32[part], final[part], {name: _spread(data, 4)}, work)
                else:
                    quantize_int8(
                        fp32[part], final[part], {name: _spread(data, 64)}, calibration_method, int8_high_precision
                    )
        kind = {"precision": precision, "int8_high_precision": int8_high_precision}
        report = fp32_report
        if final is not fp32:
            optimize = dict.fromkeys(PARTS, ort_optimizations_safe(kind))
            report = match_detections(reference, split_detect(model, check_frames, ort_runners(final, optimize)), gate)
            if report.fraction < gate.fraction:
                raise OnnxExportError(
                    f"{precision} split graphs disagree with torch fp32: {report} "
                    f"(< {gate.fraction:.0%}); refusing to write them"
                )
        if report.reference == 0:
            log.warning(
                "instance export check: the model makes no detection on the check frames at score "
                "threshold %.3f (untrained weights?): only the graphs' execution was compared",
                model.roi_heads.score_thresh,
            )

        common = {
            "precision": precision,
            "arch": arch,
            "input_size": f"{height}x{width}",
            "max_batch": str(max_batch),
            "weights_sha256": weights_fingerprint(model),
            "feature_names": ",".join(feature_names(model)),
            "roi_channels": str(channels),
            "detections_per_img": str(model.roi_heads.detections_per_img),
            "rpn_post_nms_top_n": str(model.rpn._post_nms_top_n["testing"]),
            "check_frames": str(len(check_frames)),
            "check_score_threshold": f"{model.roi_heads.score_thresh:.6g}",
            "check_detections": str(report.reference),
            "check_matched_fraction": f"{report.fraction:.6f}",
            "check_fp32_matched_fraction": f"{fp32_report.fraction:.6f}",
            "check_max_score_diff": f"{report.max_score_diff:.6f}",
            "check_gate": f"iou>={gate.iou},score<={gate.score},mask>={gate.mask},fraction>={gate.fraction}",
            "calibration_frames": str(0 if calib_frames is None else len(calib_frames)),
            "int8_high_precision": int8_high_precision if precision == "int8" else "",
            **{f"version.{k}": v for k, v in tool_versions().items()},
        }
        written: dict[str, Path] = {}
        try:
            for part in PARTS:
                out_paths[part].parent.mkdir(parents=True, exist_ok=True)
                meta = {"format": INSTANCE_GRAPH_FORMAT.format(part=part), "part": part, **common}
                written[part] = save_with_metadata(final[part], out_paths[part], meta, f"{precision} {part}")
        except Exception:
            for p in written.values():
                p.unlink(missing_ok=True)
            raise
    log.info(
        "exported the %s instance split (%dx%d width x height) in %.1f s: %s",
        precision,
        width,
        height,
        time.perf_counter() - started,
        report,
    )
    return written


def _spread(data: npt.NDArray[_Scalar], limit: int) -> npt.NDArray[_Scalar]:
    """At most ``limit`` rows of ``data``, evenly spaced."""
    if len(data) <= limit:
        return np.ascontiguousarray(data)
    pick = np.linspace(0, len(data) - 1, limit).round().astype(int)
    return np.ascontiguousarray(data[pick])
