"""Mask R-CNN served as three graphs with torch/torchvision ops between them (the "split").

The whole torchvision Mask R-CNN does not parse in TensorRT (data-dependent ``NonZero`` in
the RPN), so only its dense parts are exported (:mod:`seg_perception.export.instance`):
``backbone`` (frames -> FPN maps, RPN objectness and deltas), ``box_head`` and ``mask_head``
(RoI features -> logits). :func:`split_detect` runs them with any executor and does anchor
decoding, proposal NMS, RoIAlign, box decoding, detection NMS and mask selection with
torchvision's own ops, so every executor returns what eager torchvision returns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from seg_perception.inference.artifacts import INPUT_NAME, read_onnx_metadata, weights_fingerprint
from seg_perception.inference.base import Detections
from seg_perception.inference.threads import cpu_threads

if TYPE_CHECKING:
    from torchvision.models.detection import MaskRCNN

PARTS = ("backbone", "box_head", "mask_head")


ROI_INPUT = "roi_features"


BOX_OUTPUTS = ("class_logits", "box_regression")


MASK_OUTPUTS = ("mask_logits",)


INSTANCE_GRAPH_FORMAT = "seg_perception.instance_{part}/1"


def feature_names(model: MaskRCNN) -> list[str]:
    """The FPN level names in backbone output order ("0", "1", ..., "pool")."""
    # The dummy goes where the weights are: a model moved to CUDA (the segmenter's device)
    # rejects a CPU input, which made every ONNX Runtime batch on a GPU host fail.
    device = next(model.backbone.parameters()).device
    with torch.no_grad():
        dummy = torch.zeros(1, 3, 64, 64, device=device)
        return list(model.backbone(dummy).keys())


def graph_io(model: MaskRCNN) -> dict[str, tuple[list[str], list[str]]]:
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


# executor of one graph: input (a torch tensor: uint8 CPU frames for the backbone, RoI
# features on the device of the backbone's outputs for the heads) -> outputs (torch tensors,
# all on one device: the CPU for ONNX Runtime, the GPU for TensorRT)
GraphRunner = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@torch.inference_mode()
def split_detect(
    model: MaskRCNN,
    frames: npt.NDArray[np.uint8],
    runners: Mapping[str, GraphRunner],
    capture: dict[str, list[torch.Tensor]] | None = None,
) -> list[Detections]:
    """Detections per frame, the graphs run by ``runners``, everything else by torchvision.

    frames: uint8 (N, H, W, 3) RGB at the model input size. Returns one
    :class:`~seg_perception.inference.base.Detections` per frame (roi masks, model pixels, on
    the CPU; everything between the graphs stays on the device the backbone runner returns),
    what ``model.roi_heads`` returns in eval mode for the same inputs. ``model`` supplies the
    anchor generator, the box coders, the RoI poolers and the thresholds (score_thresh,
    nms_thresh, detections_per_img, the RPN's top-n), so a configured InstanceSegmenter's
    model gives the same selection as its torch path. ``capture`` (optional) collects the
    inputs of the box and mask graphs (int8 calibration).
    """
    from torchvision.models.detection.image_list import ImageList
    from torchvision.models.detection.roi_heads import maskrcnn_inference
    from torchvision.models.detection.rpn import concat_box_prediction_layers

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


def feature_names_cached(model: MaskRCNN) -> list[str]:
    key = id(model.backbone)
    if key not in _LEVELS:
        _LEVELS[key] = feature_names(model)
    return _LEVELS[key]


def _run_rois(runner: GraphRunner, rois: torch.Tensor, empty: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Run a RoI graph; an empty RoI batch is not sent (profiles start at one RoI): its
    outputs are empty tensors of the shapes ``empty``."""
    if rois.shape[0] == 0:
        return [torch.zeros(shape, device=rois.device) for shape in empty]
    return [torch.as_tensor(o) for o in runner(rois.contiguous())]


def ort_runners(
    paths: Mapping[str, str | Path], optimize: Mapping[str, bool] | None = None, threads: int | None = None
) -> dict[str, GraphRunner]:
    """ONNX Runtime (CPU) executors of the three graphs."""
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


def configure_for_size(model: MaskRCNN, input_size: tuple[int, int]) -> MaskRCNN:
    """Make the model's transform an identity resize at ``input_size`` (as InstanceSegmenter)."""
    model.transform.min_size = (min(input_size),)
    model.transform.max_size = max(input_size)
    return model.eval()


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
        if meta.get("format") != INSTANCE_GRAPH_FORMAT.format(part=part):
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
