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
(:func:`split_detect`), which run unchanged whichever executor (torch, ONNX Runtime,
TensorRT) runs the graphs. Masks stay per box (28x28, the ``roi`` layout the pipeline pastes).

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
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seg_perception.export.onnx import (
    INPUT_NAME,
    OPSET,
    OnnxExportError,
    _autocast_fp16,
    _quantize_int8,
    _versions,
    ort_optimizations_safe,
    read_onnx_metadata,
    require_onnx_tools,
    save_with_metadata,
    weights_fingerprint,
)
from seg_perception.inference.base import PRECISION_CHOICES

log = logging.getLogger(__name__)

PARTS = ("backbone", "box_head", "mask_head")
ROI_INPUT = "roi_features"
BOX_OUTPUTS = ("class_logits", "box_regression")
MASK_OUTPUTS = ("mask_logits",)
GRAPH_FORMAT = "seg_perception.instance_{part}/1"


# Detection matching of the split path against eager torch (per precision): a torch detection
# is matched by an unmatched split-path detection of the same class with box IoU >= iou and
# |score difference| <= score; matched pairs' 28x28 masks (> 0.5) must agree on >= mask of
# their pixels. ``fraction``: share of torch detections (and of split detections) matched.
@dataclass(frozen=True)
class MatchGate:
    iou: float
    score: float
    mask: float
    fraction: float


MATCH_GATES: dict[str, MatchGate] = {
    "fp32": MatchGate(iou=0.9, score=0.01, mask=0.95, fraction=0.95),
    "fp16": MatchGate(iou=0.9, score=0.05, mask=0.90, fraction=0.80),
    "int8": MatchGate(iou=0.5, score=0.15, mask=0.80, fraction=0.50),
}


# --------------------------------------------------------------------------- graphs


class BackboneRpnGraph(nn.Module):
    """uint8 (N, H, W, 3) RGB -> FPN maps, RPN objectness and deltas per level."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.rpn_head = model.rpn.head
        self.register_buffer("mean", torch.tensor(model.transform.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.transform.image_std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = frames.float().permute(0, 3, 1, 2) / 255.0  # cast first: TensorRT transposes no uint8
        x = (x - self.mean) / self.std
        feats = list(self.backbone(x).values())
        objectness, deltas = self.rpn_head(feats)
        return (*feats, *objectness, *deltas)


class BoxHeadGraph(nn.Module):
    """RoI features (R, C, 7, 7) -> class logits (R, K), box regression (R, 4K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.head = model.roi_heads.box_head
        self.predictor = model.roi_heads.box_predictor

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor(self.head(roi_features))


class MaskHeadGraph(nn.Module):
    """RoI features (R, C, 14, 14) -> mask logits (R, K, 28, 28)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.head = model.roi_heads.mask_head
        self.predictor = model.roi_heads.mask_predictor

    def forward(self, roi_features: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.head(roi_features))


def feature_names(model: nn.Module) -> list[str]:
    """The FPN level names in backbone output order ("0", "1", ..., "pool")."""
    with torch.no_grad():
        dummy = torch.zeros(1, 3, 64, 64)
        return list(model.backbone(dummy).keys())


def graph_io(model: nn.Module) -> dict[str, tuple[list[str], list[str]]]:
    """part -> (input names, output names)."""
    levels = feature_names(model)
    backbone_out = [f"feat_{n}" for n in levels]
    backbone_out += [f"objectness_{i}" for i in range(len(levels))] + [f"deltas_{i}" for i in range(len(levels))]
    return {
        "backbone": ([INPUT_NAME], backbone_out),
        "box_head": ([ROI_INPUT], list(BOX_OUTPUTS)),
        "mask_head": ([ROI_INPUT], list(MASK_OUTPUTS)),
    }


def instance_artifact_paths(
    engines_dir: str | Path, model: str, input_size: tuple[int, int], precision: str
) -> dict[str, tuple[Path, Path]]:
    """part -> (onnx, engine): ``<engines_dir>/<model>_<H>x<W>_<precision>.<part>.onnx`` and
    ``.<part>.engine`` (sidecar ``.<part>.engine.json``)."""
    stem = f"{model}_{input_size[0]}x{input_size[1]}_{precision}"
    base = Path(engines_dir)
    return {part: (base / f"{stem}.{part}.onnx", base / f"{stem}.{part}.engine") for part in PARTS}


# --------------------------------------------------------------------------- the split path

# executor of one graph: inputs (torch CPU tensors) -> outputs (torch tensors)
GraphRunner = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def torch_runners(model: nn.Module) -> dict[str, GraphRunner]:
    """The three graphs run by torch itself (the reference the exports are checked against)."""
    graphs = {"backbone": BackboneRpnGraph(model), "box_head": BoxHeadGraph(model), "mask_head": MaskHeadGraph(model)}

    def runner(graph: nn.Module) -> GraphRunner:
        def run(x: torch.Tensor) -> Sequence[torch.Tensor]:
            out = graph(x)
            return out if isinstance(out, tuple) else (out,)

        return run

    return {part: runner(g.eval()) for part, g in graphs.items()}


@torch.inference_mode()
def split_detect(
    model: nn.Module,
    frames: np.ndarray,
    runners: Mapping[str, GraphRunner],
    capture: dict[str, list[torch.Tensor]] | None = None,
) -> list[Any]:
    """Detections per frame, the graphs run by ``runners``, everything else by torchvision.

    frames: uint8 (N, H, W, 3) RGB at the model input size. Returns one
    :class:`seg_perception.pipeline.instance.Detections` per frame (roi masks, model pixels),
    what ``model.roi_heads`` returns in eval mode for the same inputs. ``model`` supplies the
    anchor generator, the box coders, the RoI poolers and the thresholds (score_thresh,
    nms_thresh, detections_per_img, the RPN's top-n), so a configured InstanceSegmenter's
    model gives the same selection as its torch path. ``capture`` (optional) collects the
    inputs of the box and mask graphs (int8 calibration).
    """
    from torchvision.models.detection.image_list import ImageList
    from torchvision.models.detection.roi_heads import maskrcnn_inference
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    from seg_perception.pipeline.instance import Detections

    n, height, width = frames.shape[:3]
    levels = feature_names_cached(model)
    outs = [torch.as_tensor(o) for o in runners["backbone"](torch.from_numpy(np.ascontiguousarray(frames)))]
    k = len(levels)
    features = OrderedDict(zip(levels, outs[:k]))
    objectness, deltas = outs[k : 2 * k], outs[2 * k : 3 * k]
    sizes = [(height, width)] * n
    # Only the shape of the image tensor is read (anchor strides): an expanded view, no copy.
    images = ImageList(torch.zeros(1, 1, 1, 1).expand(n, 3, height, width), sizes)

    rpn = model.rpn
    anchors = rpn.anchor_generator(images, list(features.values()))
    num_anchors_per_level = [o[0].numel() for o in objectness]
    flat_obj, flat_deltas = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(flat_deltas.detach(), anchors).view(n, -1, 4)
    proposals, _ = rpn.filter_proposals(proposals, flat_obj, sizes, num_anchors_per_level)

    heads = model.roi_heads
    box_features = heads.box_roi_pool(features, proposals, sizes)
    if capture is not None:
        capture.setdefault("box_head", []).append(box_features)
    classes = heads.box_predictor.cls_score.out_features
    class_logits, box_regression = _run_rois(runners["box_head"], box_features, [(0, classes), (0, 4 * classes)])
    boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)

    mask_features = heads.mask_roi_pool(features, boxes, sizes)
    if capture is not None and len(mask_features):
        capture.setdefault("mask_head", []).append(mask_features)
    (mask_logits,) = _run_rois(runners["mask_head"], mask_features, [(0, classes, 28, 28)])
    masks = maskrcnn_inference(mask_logits, labels)
    return [Detections(b.cpu(), lab.cpu(), s.cpu(), m.cpu()) for b, lab, s, m in zip(boxes, labels, scores, masks)]


_LEVELS: dict[int, list[str]] = {}


def feature_names_cached(model: nn.Module) -> list[str]:
    key = id(model.backbone)
    if key not in _LEVELS:
        _LEVELS[key] = feature_names(model)
    return _LEVELS[key]


def _run_rois(runner: GraphRunner, rois: torch.Tensor, empty: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Run a RoI graph; an empty RoI batch is not sent (profiles start at one RoI): its
    outputs are empty tensors of the shapes ``empty``."""
    if rois.shape[0] == 0:
        return [torch.zeros(shape) for shape in empty]
    return [torch.as_tensor(o) for o in runner(rois.contiguous())]


def ort_runners(
    paths: Mapping[str, str | Path], optimize: Mapping[str, bool] | None = None, threads: int | None = None
) -> dict[str, GraphRunner]:
    """ONNX Runtime (CPU) executors of the three graphs."""
    from seg_perception.export.onnx import cpu_threads
    from seg_perception.inference.onnxruntime_backend import import_onnxruntime

    ort = import_onnxruntime()
    runners: dict[str, GraphRunner] = {}
    for part in PARTS:
        opts = ort.SessionOptions()
        safe = True if optimize is None else optimize.get(part, True)
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if safe else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or cpu_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(paths[part]), sess_options=opts, providers=["CPUExecutionProvider"])
        runners[part] = _session_runner(session)
    return runners


def _session_runner(session: Any) -> GraphRunner:
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> Sequence[torch.Tensor]:
        return [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]

    return run


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class MatchReport:
    reference: int  # torch detections
    candidate: int  # split-path detections
    matched: int
    max_score_diff: float
    min_mask_agreement: float

    @property
    def fraction(self) -> float:
        """Matched share of the larger of the two detection sets (1.0 when both are empty)."""
        n = max(self.reference, self.candidate)
        return 1.0 if n == 0 else self.matched / n

    def __str__(self) -> str:
        return (
            f"{self.matched}/{self.reference} torch detections matched by {self.candidate} "
            f"({self.fraction:.1%}), max score diff {self.max_score_diff:.4f}, "
            f"min mask agreement {self.min_mask_agreement:.3f}"
        )


def match_detections(reference: Sequence[Any], candidate: Sequence[Any], gate: MatchGate) -> MatchReport:
    """Greedy matching, best reference score first: same class, IoU >= gate.iou,
    |score diff| <= gate.score, roi masks (> 0.5) agreeing on >= gate.mask of their pixels."""
    from torchvision.ops import box_iou

    n_ref = n_cand = matched = 0
    max_diff, min_mask = 0.0, 1.0
    for ref, cand in zip(reference, candidate, strict=True):
        n_ref += len(ref.scores)
        n_cand += len(cand.scores)
        if not len(ref.scores) or not len(cand.scores):
            continue
        iou = box_iou(ref.boxes.float(), cand.boxes.float())
        used = torch.zeros(len(cand.scores), dtype=torch.bool)
        for i in torch.argsort(ref.scores, descending=True).tolist():
            ok = (~used) & (cand.labels == ref.labels[i]) & (iou[i] >= gate.iou)
            ok &= (cand.scores - ref.scores[i]).abs() <= gate.score
            if not ok.any():
                continue
            j = int(torch.where(ok, iou[i], torch.tensor(-1.0)).argmax())
            agree = float(((ref.masks[i] > 0.5) == (cand.masks[j] > 0.5)).float().mean())
            if agree < gate.mask:
                continue
            used[j] = True
            matched += 1
            max_diff = max(max_diff, float((cand.scores[j] - ref.scores[i]).abs()))
            min_mask = min(min_mask, agree)
    return MatchReport(n_ref, n_cand, matched, max_diff, min_mask)


# --------------------------------------------------------------------------- frames


def scene_frames(input_size: tuple[int, int], count: int = 4, seed: int = 0) -> np.ndarray:
    """Generated road scenes (cars, people, ...) at ``input_size`` = (H, W), uint8 RGB."""
    from seg_perception.synthetic.scenes import generate_frame

    height, width = input_size
    return np.stack([generate_frame(seed, i, width, height).image for i in range(count)])


@torch.inference_mode()
def eager_detect(model: nn.Module, frames: np.ndarray) -> list[Any]:
    """What InstanceSegmenter's torch path returns (eager torchvision), for comparisons."""
    from seg_perception.pipeline.instance import TorchInstanceBackend

    return TorchInstanceBackend(model, (frames.shape[1], frames.shape[2])).detect(frames)


def configure_for_size(model: nn.Module, input_size: tuple[int, int]) -> nn.Module:
    """Make the model's transform an identity resize at ``input_size`` (as InstanceSegmenter)."""
    model.transform.min_size = (min(input_size),)
    model.transform.max_size = max(input_size)
    return model.eval()


# --------------------------------------------------------------------------- export


def _export_graph(
    module: nn.Module,
    dummy: torch.Tensor,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> None:
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    except Exception as err:
        raise OnnxExportError(f"torch.onnx.export of {path.stem} failed: {err}") from err


def export_instance_onnx(
    model: nn.Module,
    paths: Mapping[str, str | Path],
    input_size: tuple[int, int],
    precision: str = "fp32",
    calib_frames: np.ndarray | None = None,
    *,
    arch: str = "",
    max_batch: int = 4,
    check_frames: np.ndarray | None = None,
    score_threshold: float | None = None,
    gate: MatchGate | None = None,
    int8_high_precision: str = "fp16",
    calibration_method: str = "max",
) -> dict[str, Path]:
    """Export ``model`` (a torchvision Mask R-CNN) as the three split graphs in ``precision``.

    paths: part -> ONNX path (:func:`instance_artifact_paths`). input_size: (H, W), multiples
    of 32 (the FPN strides; the graphs are fixed-size, batch dynamic). calib_frames: uint8
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
            _export_graph(graphs[part].eval(), dummies[part], fp32[part], inputs, outputs, dynamic)

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
                    _autocast_fp16(fp32[part], final[part], {name: _spread(data, 4)}, work)
                else:
                    _quantize_int8(
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
            **{f"version.{k}": v for k, v in _versions().items()},
        }
        written: dict[str, Path] = {}
        try:
            for part in PARTS:
                out_paths[part].parent.mkdir(parents=True, exist_ok=True)
                meta = {"format": GRAPH_FORMAT.format(part=part), "part": part, **common}
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


def _spread(data: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` rows of ``data``, evenly spaced."""
    if len(data) <= limit:
        return np.ascontiguousarray(data)
    pick = np.linspace(0, len(data) - 1, limit).round().astype(int)
    return np.ascontiguousarray(data[pick])


def instance_onnx_matches(
    paths: Mapping[str, str | Path], model: nn.Module | None, precision: str, input_size: tuple[int, int] | None = None
) -> str | None:
    """Why the split graphs at ``paths`` cannot serve ``model`` in ``precision`` (None = they can)."""
    fingerprint = weights_fingerprint(model) if model is not None else None
    for part in PARTS:
        p = Path(paths[part])
        if not p.is_file():
            return f"{p} does not exist"
        meta = read_onnx_metadata(p)
        if meta.get("format") != GRAPH_FORMAT.format(part=part):
            return f"{p} is not a seg_perception instance {part} graph (format {meta.get('format')!r})"
        if meta.get("precision") != precision:
            return f"{p} is a {meta.get('precision')} graph, {precision} was asked for"
        if input_size is not None and meta.get("input_size") != f"{input_size[0]}x{input_size[1]}":
            return (
                f"{p} is for input size {meta.get('input_size')} (HxW), {input_size[0]}x{input_size[1]} was asked for"
            )
        if fingerprint is not None and meta.get("weights_sha256") != fingerprint:
            return f"{p} was exported from other weights than the model being served"
    return None


# --------------------------------------------------------------------------- engines


def build_instance_engines(
    onnx_paths: Mapping[str, str | Path],
    engine_paths: Mapping[str, str | Path],
    precision: str,
    *,
    opt_batch: int = 1,
    max_batch: int = 4,
    max_rois: int | None = None,
    max_detections: int | None = None,
    workspace_mb: int = 2048,
    timing_cache: str | Path | None = None,
    rtx_targets: Sequence[str] = (),
    library: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Build the three split graphs into engines (each with its JSON sidecar).

    Profiles: ``frames`` (1..max_batch, H, W, 3) for the backbone; ``roi_features`` of the box
    head up to ``max_rois`` RoIs (default: the RPN's post-NMS count x max_batch) and of the
    mask head up to ``max_detections`` (default: detections_per_img x max_batch), the numbers
    recorded in the ONNX metadata at export. Returns part -> sidecar.
    """
    from seg_perception.export.engine_build import EngineBuildError, build_engine

    missing = [str(onnx_paths[part]) for part in PARTS if not Path(onnx_paths[part]).is_file()]
    if missing:
        raise EngineBuildError(
            f"instance split graphs not found: {', '.join(missing)}; export them: "
            f"seg-perception export --model instance --precision {precision}"
        )
    meta = read_onnx_metadata(onnx_paths["backbone"])
    if not str(meta.get("format", "")).startswith("seg_perception.instance_"):
        raise OnnxExportError(
            f"{onnx_paths['backbone']} is not an instance split graph; export it: "
            f"seg-perception export --model instance --precision {precision}"
        )
    height, _, width = meta["input_size"].partition("x")
    h, w, c = int(height), int(width), int(meta["roi_channels"])
    post_nms, dets = int(meta["rpn_post_nms_top_n"]), int(meta["detections_per_img"])
    max_rois = max_rois or post_nms * max_batch
    max_detections = max_detections or dets * max_batch
    profiles = {
        "backbone": {INPUT_NAME: ((1, h, w, 3), (opt_batch, h, w, 3), (max_batch, h, w, 3))},
        "box_head": {ROI_INPUT: ((1, c, 7, 7), (min(post_nms * opt_batch, max_rois), c, 7, 7), (max_rois, c, 7, 7))},
        "mask_head": {
            ROI_INPUT: ((1, c, 14, 14), (min(dets * opt_batch, max_detections), c, 14, 14), (max_detections, c, 14, 14))
        },
    }
    rebuild = (
        f"seg-perception build-engine --model instance --precision {precision} "
        f"--engines-dir {Path(engine_paths['backbone']).parent} --opt-batch {opt_batch} "
        f"--max-batch {max_batch}"
        + (f" --library {library}" if library else "")
        + "".join(f" --rtx-target {t}" for t in rtx_targets)
    )
    sides = {}
    for part in PARTS:
        sides[part] = build_engine(
            onnx_paths[part],
            engine_paths[part],
            precision,
            min_batch=1,
            opt_batch=opt_batch,
            max_batch=max_batch,
            workspace_mb=workspace_mb,
            timing_cache=timing_cache,
            rtx_targets=rtx_targets,
            library=library,
            profile=profiles[part],
            rebuild=rebuild,
        )
    return sides
