"""The Mask R-CNN split: three ONNX graphs with torchvision ops between, verified in ONNX
Runtime against eager torch; the ONNX Runtime instance backend and its wiring; TensorRT-RTX
builds of the three graphs (slow).

Everything runs at 128x256 with a small model whose detections are real (not the near-uniform
scores of untrained weights), see :func:`detecting_model`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seg_perception.errors import BackendError
from seg_perception.export.instance import OnnxExportError, export_instance_onnx
from seg_perception.export.instance_check import MATCH_GATES, MatchGate, eager_detect, match_detections, scene_frames
from seg_perception.export.instance_graphs import torch_runners
from seg_perception.inference.artifacts import read_onnx_metadata
from seg_perception.inference.instance_split import PARTS, configure_for_size, instance_artifact_paths, split_detect
from seg_perception.io.image import ColorOrder, DecodedImage
from seg_perception.labels import load_label_set
from seg_perception.models.instance import build_instance_model, instance_class_names, save_instance_checkpoint

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install -r requirements-accel.txt)")

SIZE = (128, 256)  # (height, width)
ARCH = "maskrcnn_mobilenet_v3_large_fpn"
LABELS = load_label_set("cityscapes")
SCORE, DETECTIONS = 0.5, 20
HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
HAS_MODELOPT = importlib.util.find_spec("modelopt") is not None


def detecting_model(seed: int = 3) -> torch.nn.Module:
    """Untrained Mask R-CNN-MobileNetV3 that makes confident, varied detections.

    Fresh weights give every RoI ~1/9 per class (near ties everywhere, so any float
    reordering changes which detections survive NMS). BatchNorm statistics taken on generated
    road scenes and a 10x sharper box classifier spread the scores over 0.3-0.9.
    """
    model, _ = build_instance_model(
        ARCH, len(instance_class_names(LABELS)), seed=seed, min_size=min(SIZE), max_size=max(SIZE)
    )
    configure_for_size(model, SIZE)
    x = torch.from_numpy(scene_frames(SIZE, 8, seed=1)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(model.transform.image_mean)[:, None, None]
    std = torch.tensor(model.transform.image_std)[:, None, None]
    with torch.no_grad():
        for module in model.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the batch
                module.train()
        model.backbone((x - mean) / std)
        model.eval()
        model.roi_heads.box_predictor.cls_score.weight.mul_(10.0)
    model.roi_heads.score_thresh = SCORE
    model.roi_heads.detections_per_img = DETECTIONS
    return model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return detecting_model()


@pytest.fixture(scope="module")
def engines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance_engines")


def onnx_paths(engines_dir: Path, precision: str) -> dict[str, Path]:
    return {part: onnx for part, (onnx, _) in instance_artifact_paths(engines_dir, ARCH, SIZE, precision).items()}


@pytest.fixture(scope="module")
def fp32_graphs(model: torch.nn.Module, engines_dir: Path) -> dict[str, Path]:
    return export_instance_onnx(model, onnx_paths(engines_dir, "fp32"), SIZE, "fp32", arch=ARCH)


@pytest.fixture(scope="module")
def heldout() -> np.ndarray:
    return scene_frames(SIZE, 3, seed=10_000)


# --------------------------------------------------------------------------- split path


def test_split_path_with_torch_graphs_gives_the_eager_detections(model: torch.nn.Module, heldout: np.ndarray) -> None:
    ref = eager_detect(model, heldout)
    assert sum(len(d.scores) for d in ref) >= 10, "the test model must detect something"
    assert min(float(d.scores.min()) for d in ref if len(d.scores)) >= SCORE
    got = split_detect(model, heldout, torch_runners(model))
    for a, b in zip(ref, got):
        assert a.masks.shape == b.masks.shape and a.masks.shape[1:] == (1, 28, 28)
        torch.testing.assert_close(a.boxes, b.boxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=0)
        assert torch.equal(a.labels, b.labels)


def test_fp32_split_export_has_three_graphs_with_dynamic_batch_and_rois(fp32_graphs: dict[str, Path]) -> None:
    import onnx

    assert sorted(fp32_graphs) == sorted(PARTS)
    assert fp32_graphs["backbone"].name == f"{ARCH}_128x256_fp32.backbone.onnx"
    inputs = {}
    for part, path in fp32_graphs.items():
        graph = onnx.load(str(path), load_external_data=False).graph
        inputs[part] = graph.input[0]
        assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch / RoI count
        meta = read_onnx_metadata(path)
        assert meta["format"] == f"seg_perception.instance_{part}/1" and meta["precision"] == "fp32"
        assert int(meta["check_detections"]) >= 10 and float(meta["check_matched_fraction"]) >= 0.95
        outputs = [o.name for o in graph.output]
        if part == "backbone":
            assert outputs[:4] == ["feat_0", "feat_1", "feat_2", "feat_pool"] and "objectness_3" in outputs
    assert [d.dim_value for d in inputs["backbone"].type.tensor_type.shape.dim[1:]] == [128, 256, 3]
    assert [d.dim_value for d in inputs["box_head"].type.tensor_type.shape.dim[1:]] == [256, 7, 7]
    assert [d.dim_value for d in inputs["mask_head"].type.tensor_type.shape.dim[1:]] == [256, 14, 14]


def test_export_refuses_when_the_check_fails_and_writes_nothing(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match="refusing to write them"):
        export_instance_onnx(
            model,
            onnx_paths(tmp_path, "fp32"),
            SIZE,
            "fp32",
            gate=MatchGate(iou=0.9, score=0.01, mask=0.95, fraction=1.01),
        )
    assert not list(tmp_path.iterdir())
    with pytest.raises(OnnxExportError, match="multiples of 32"):
        export_instance_onnx(model, onnx_paths(tmp_path, "fp32"), (100, 256), "fp32")
    with pytest.raises(OnnxExportError, match="int8 export needs calibration frames"):
        export_instance_onnx(model, onnx_paths(tmp_path, "int8"), SIZE, "int8")


# --------------------------------------------------------------------------- ONNX Runtime backend


def test_ort_instance_backend_matches_torch_on_generated_scenes(
    model: torch.nn.Module, fp32_graphs: dict[str, Path], heldout: np.ndarray
) -> None:
    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend

    backend = OnnxRuntimeInstanceBackend(model, fp32_graphs, SIZE, "fp32")
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")
    ref = eager_detect(model, heldout)
    got = backend.detect(heldout)
    report = match_detections(ref, got, MATCH_GATES["fp32"])  # IoU >= 0.9, score diff <= 0.01
    assert report.reference >= 10 and report.fraction >= 0.95, report
    assert report.max_score_diff <= 0.01
    with pytest.raises(BackendError, match="the model takes 256x128"):
        backend.detect(np.zeros((1, 64, 128, 3), np.uint8))


def test_ort_instance_backend_serves_a_model_that_lives_off_the_cpu(
    model: torch.nn.Module, fp32_graphs: dict[str, Path], heldout: np.ndarray
) -> None:
    """The segmenter moves its model to its device (CUDA on a GPU host) before the ONNX
    Runtime split serves it; the split must not feed that model CPU tensors. PyTorch's meta
    device stands where CUDA would: weights off the CPU, same refusal of a CPU input."""
    import copy

    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend

    on_cpu = OnnxRuntimeInstanceBackend(model, fp32_graphs, SIZE, "fp32")
    moved = OnnxRuntimeInstanceBackend(copy.deepcopy(model), fp32_graphs, SIZE, "fp32")
    moved.model.to("meta")
    want, got = on_cpu.detect(heldout[:2]), moved.detect(heldout[:2])
    assert sum(len(d.scores) for d in want) >= 1
    for a, b in zip(want, got):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)


def test_ort_instance_backend_refuses_other_weights_and_precisions(fp32_graphs: dict[str, Path]) -> None:
    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend

    with pytest.raises(BackendError, match=r"exported from other weights.*seg-perception export --model instance"):
        OnnxRuntimeInstanceBackend(detecting_model(seed=4), fp32_graphs, SIZE, "fp32")
    with pytest.raises(BackendError, match="is a fp32 graph, fp16 was asked for"):
        OnnxRuntimeInstanceBackend(detecting_model(), fp32_graphs, SIZE, "fp16")
    with pytest.raises(BackendError, match="is for input size 128x256"):
        OnnxRuntimeInstanceBackend(detecting_model(), fp32_graphs, (256, 512), "fp32")


def test_instance_from_config_serves_onnxruntime_from_the_engines_folder(
    model: torch.nn.Module,
    fp32_graphs: dict[str, Path],
    engines_dir: Path,
    tmp_path: Path,
) -> None:
    from seg_perception.config.records import InstanceModelConfig, node_defaults
    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend
    from seg_perception.inference.torch_backend import TorchInstanceBackend
    from seg_perception.pipeline import factory

    checkpoint = save_instance_checkpoint(tmp_path / "inst.pth", model, ARCH, instance_class_names(LABELS))
    params = node_defaults("instance")
    params.update(
        input_height=SIZE[0],
        input_width=SIZE[1],
        checkpoint=str(checkpoint),
        device="cpu",
        score_threshold=SCORE,
        max_instances=DETECTIONS,
        engines_dir=str(engines_dir),
    )
    frames = [DecodedImage(f, ColorOrder.RGB) for f in scene_frames((256, 512), 2, seed=10_100)]
    results = {}
    for backend in ("onnxruntime", "auto", "torch"):
        segmenter = factory.instance_from_config(InstanceModelConfig.from_params({**params, "backend": backend}))
        results[backend] = segmenter.segment(frames)
        if backend != "torch":
            assert isinstance(segmenter.backend, OnnxRuntimeInstanceBackend)  # auto: the graphs exist
    for ort_result, torch_result in zip(results["onnxruntime"], results["torch"]):
        assert ort_result.instance_map.shape == (256, 512)
        assert len(torch_result.instances) >= 1
        same = (ort_result.instance_map == torch_result.instance_map).mean()
        assert same >= 0.98
    empty = tmp_path / "empty"
    empty.mkdir()
    segmenter = factory.instance_from_config(
        InstanceModelConfig.from_params({**params, "backend": "auto", "engines_dir": str(empty)})
    )
    assert isinstance(segmenter.backend, TorchInstanceBackend)  # auto never exports at start-up


def test_instance_accuracy_gate_reports_ap50_and_refuses_past_the_limit(
    model: torch.nn.Module, fp32_graphs: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from seg_perception.export.accuracy import AccuracyGateError, instance_accuracy_gate
    from seg_perception.pipeline.instance import InstanceSegmenter

    segmenter = InstanceSegmenter(model, LABELS, SIZE, score_threshold=SCORE, max_instances=DETECTIONS)
    report = instance_accuracy_gate(segmenter, fp32_graphs, "fp32", frames=2)
    assert report.metric == "mask AP50" and report.passed and abs(report.drop) <= 1.0
    copies = {part: tmp_path / p.name for part, p in fp32_graphs.items()}
    for part, p in fp32_graphs.items():
        shutil.copy(p, copies[part])
    with pytest.raises(AccuracyGateError, match=r"drop .* points \(max -1.00\); refused and removed the export"):
        instance_accuracy_gate(segmenter, copies, "fp32", frames=1, max_drop=-1.0)
    assert not any(p.exists() for p in copies.values())


# --------------------------------------------------------------------------- engines (slow)


@pytest.fixture(scope="module")
def graphs_by_precision(model: torch.nn.Module, engines_dir: Path, fp32_graphs: dict[str, Path]) -> dict:
    if not HAS_MODELOPT:
        pytest.skip("nvidia-modelopt not installed")
    calib = scene_frames(SIZE, 8, seed=30_000)
    # An untrained backbone does not survive int8 (its proposals move); the int8 check here only
    # proves the graphs run; the accuracy gate judges real checkpoints.
    loose = MatchGate(iou=0.5, score=1.0, mask=0.0, fraction=0.0)
    return {
        "fp32": fp32_graphs,
        "fp16": export_instance_onnx(model, onnx_paths(engines_dir, "fp16"), SIZE, "fp16", calib, arch=ARCH),
        "int8": export_instance_onnx(
            model, onnx_paths(engines_dir, "int8"), SIZE, "int8", calib, arch=ARCH, gate=loose
        ),
    }


@pytest.fixture(scope="module")
def fp32_engines(fp32_graphs: dict[str, Path], engines_dir: Path) -> tuple[dict[str, Path], dict[str, dict]]:
    """The three fp32 split engines, built by TensorRT-RTX (no GPU needed), batch <= 2."""
    if not HAS_RTX:
        pytest.skip("TensorRT-RTX not installed (pip install -r requirements-accel.txt)")
    from seg_perception.export.engine_build import build_instance_engines

    engines = {part: e for part, (_, e) in instance_artifact_paths(engines_dir, ARCH, SIZE, "fp32").items()}
    sides = build_instance_engines(fp32_graphs, engines, "fp32", max_batch=2, library="tensorrt_rtx", workspace_mb=1024)
    return engines, sides


@pytest.mark.slow
def test_tensorrt_instance_engines_bind_what_the_backend_runs(
    model: torch.nn.Module, fp32_engines: tuple[dict[str, Path], dict[str, dict]]
) -> None:
    """What can be checked without running an engine: the sidecars of real TensorRT-RTX
    builds name the tensors, shapes and profiles the TensorRT instance backend binds for this
    model, and a model they do not fit is refused before anything touches a GPU."""
    from seg_perception.inference.tensorrt_instance import (
        TensorRTInstanceBackend,
        expected_bindings,
        instance_engines_problem,
    )

    engines, sides = fp32_engines
    want = expected_bindings(model, SIZE)
    assert want["box_head"]["fixed"] == [256, 7, 7] and want["mask_head"]["fixed"] == [256, 14, 14]
    assert instance_engines_problem(sides, model, SIZE) is None
    for part in PARTS:
        side = sides[part]
        assert [i["name"] for i in side["inputs"]] == want[part]["inputs"]
        assert [o["name"] for o in side["outputs"]] == want[part]["outputs"]  # graph order: what split_detect reads
        assert side["inputs"][0]["min"][0] == 1  # one frame, one RoI: the smallest batch the split sends
    # RoI profile limits from the RPN settings and the batch size the engines were built for.
    assert sides["box_head"]["inputs"][0]["max"][0] == model.rpn._post_nms_top_n["testing"] * 2
    assert sides["mask_head"]["inputs"][0]["max"][0] == model.roi_heads.detections_per_img * 2
    assert instance_engines_problem(sides, model, (256, 512)) == (
        "the backbone engine takes [128, 256, 3] per item, the model needs [256, 512, 3]"
    )
    other, _ = build_instance_model(ARCH, 3, seed=0, min_size=min(SIZE), max_size=max(SIZE))
    assert str(instance_engines_problem(sides, other, SIZE)) == "the box_head engine predicts 9 classes, the model 3"
    with pytest.raises(BackendError, match="do not fit this model: the backbone engine takes"):
        TensorRTInstanceBackend(model, engines, (256, 512), "fp32", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="needs a CUDA GPU and torch sees none"):
            TensorRTInstanceBackend(model, engines, SIZE, "fp32", "cuda")


@pytest.mark.slow
def test_instance_auto_skips_engines_no_runtime_can_run_and_says_why(
    model: torch.nn.Module,
    fp32_graphs: dict[str, Path],
    fp32_engines: tuple[dict[str, Path], dict[str, dict]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from seg_perception.inference.engine_policy import tensorrt_runtime_problem
    from seg_perception.inference.instance_backend import create_instance_backend

    engines, _ = fp32_engines
    with caplog.at_level(logging.INFO, logger="seg_perception.inference.instance_backend"):
        chosen = create_instance_backend("auto", model, SIZE, "fp32", fp32_graphs, "cpu", engines)
    assert chosen.name == "onnxruntime"
    assert f"skipped tensorrt: {tensorrt_runtime_problem('cpu')}" in caplog.text


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_ort_instance_backend_serves_a_cuda_model(
    model: torch.nn.Module, fp32_graphs: dict[str, Path], heldout: np.ndarray, tmp_path: Path
) -> None:
    """The factory's case on a GPU host: the segmenter's model on CUDA, the split in ONNX
    Runtime: every batch used to fail on a CPU dummy tensor."""
    import copy

    from seg_perception.config.records import InstanceModelConfig, node_defaults
    from seg_perception.inference.instance_backend import OnnxRuntimeInstanceBackend
    from seg_perception.pipeline import factory

    cuda_model = copy.deepcopy(model).to("cuda")
    backend = OnnxRuntimeInstanceBackend(cuda_model, fp32_graphs, SIZE, "fp32")
    report = match_detections(eager_detect(model, heldout), backend.detect(heldout), MATCH_GATES["fp32"])
    assert report.reference >= 1 and report.fraction >= 0.95, report
    checkpoint = save_instance_checkpoint(tmp_path / "inst.pth", model, ARCH, instance_class_names(LABELS))
    params = {**node_defaults("instance"), "input_height": SIZE[0], "input_width": SIZE[1], "device": "cuda"}
    params.update(
        checkpoint=str(checkpoint),
        score_threshold=SCORE,
        max_instances=DETECTIONS,
        engines_dir=str(fp32_graphs["backbone"].parent),
        backend="onnxruntime",
    )
    segmenter = factory.instance_from_config(InstanceModelConfig.from_params(params))
    assert isinstance(segmenter.backend, OnnxRuntimeInstanceBackend)
    assert segmenter.model.roi_heads.box_predictor.cls_score.weight.is_cuda
    frames = [DecodedImage(f, ColorOrder.RGB) for f in heldout[:2]]
    assert any(r.instances for r in segmenter.segment(frames))


@needs_cuda
@pytest.mark.slow
def test_cuda_tensorrt_instance_backend_matches_eager_torch(
    model: torch.nn.Module,
    fp32_graphs: dict[str, Path],
    fp32_engines: tuple[dict[str, Path], dict[str, dict]],
    heldout: np.ndarray,
) -> None:
    """The split engines with a CUDA model, batches of 1 and 2 (the profile's largest) and 3
    (split in two), against eager torchvision on the CPU."""
    import copy

    from seg_perception.inference.artifacts import check_sidecar
    from seg_perception.inference.tensorrt_instance import TensorRTInstanceBackend

    engines, _ = fp32_engines
    try:
        check_sidecar(engines["backbone"], fp32_graphs["backbone"], "fp32")
    except BackendError as err:
        pytest.skip(f"the TensorRT-RTX engines cannot run on this GPU: {err}")
    cuda_model = copy.deepcopy(model).to("cuda")
    backend = TensorRTInstanceBackend(cuda_model, engines, SIZE, "fp32", "cuda", fp32_graphs)
    ref = eager_detect(model, heldout)
    for frames, want in ((heldout[:1], ref[:1]), (heldout[:2], ref[:2]), (heldout, ref)):
        got = backend.detect(frames)
        assert all(d.boxes.device.type == "cpu" for d in got)
        report = match_detections(want, got, MATCH_GATES["fp32"])
        assert report.reference >= 1 and report.fraction >= 0.95, report


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX not installed (pip install -r requirements-accel.txt)")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_rtx_builds_all_three_split_graphs(
    precision: str, graphs_by_precision: dict, engines_dir: Path, request: pytest.FixtureRequest
) -> None:
    from collections import Counter

    import onnx

    from seg_perception.export.engine_build import build_instance_engines
    from seg_perception.inference.artifacts import check_sidecar, sidecar_path

    graphs = graphs_by_precision[precision]
    if precision == "int8":
        ops = Counter(n.op_type for n in onnx.load(str(graphs["backbone"])).graph.node)
        assert ops["QuantizeLinear"] >= 20
    if precision == "fp32":  # built once for this module
        engines, sides = request.getfixturevalue("fp32_engines")
    else:
        engines = {part: e for part, (_, e) in instance_artifact_paths(engines_dir, ARCH, SIZE, precision).items()}
        sides = build_instance_engines(
            graphs, engines, precision, max_batch=2, library="tensorrt_rtx", workspace_mb=1024
        )
    for part in PARTS:
        side = sides[part]
        assert engines[part].stat().st_size > 500_000 and json.loads(sidecar_path(engines[part]).read_text()) == side
        assert side["precision"] == precision and side["strongly_typed"] is True
        assert "--model instance" in side["rebuild_command"]
        assert check_sidecar(engines[part], graphs[part], precision, gpu=None) == side
    assert sides["backbone"]["input"]["max"] == [2, 128, 256, 3]
    assert sides["box_head"]["input"]["max"] == [300 * 2, 256, 7, 7]
    assert sides["mask_head"]["input"]["max"] == [DETECTIONS * 2, 256, 14, 14]
    assert [o["name"] for o in sides["mask_head"]["outputs"]] == ["mask_logits"]


@pytest.mark.ros
@pytest.mark.slow
def test_instance_node_on_onnxruntime_publishes_what_the_torch_core_computes(
    model: torch.nn.Module,
    fp32_graphs: dict[str, Path],
    engines_dir: Path,
    tmp_path: Path,
) -> None:
    """The node with ``backend: onnxruntime`` (split graphs) over DDS vs the eager torch core."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_perception.config.records import InstanceModelConfig, node_defaults
    from seg_perception.pipeline import factory
    from seg_perception.ros.messages import image_msg
    from seg_perception.ros.tools.harness import GraphClient, NodeProcess
    from test.ros.helpers import latest_diagnostics, publish_until, stamped

    checkpoint = save_instance_checkpoint(tmp_path / "inst.pth", model, ARCH, instance_class_names(LABELS))
    params = {
        "input_height": SIZE[0],
        "input_width": SIZE[1],
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "score_threshold": SCORE,
        "max_instances": DETECTIONS,
        "engines_dir": str(engines_dir),
    }
    torch_core = factory.instance_from_config(
        InstanceModelConfig.from_params({**node_defaults("instance"), **params, "backend": "torch"})
    )
    ns = "/inst_ort"
    node = NodeProcess(
        "seg_perception.ros.instance_node", ns, {**params, "backend": "onnxruntime", "diagnostics_period": 0.5}
    )
    client = GraphClient("instance_ort_client")
    try:
        client.subscribe(Image, f"{ns}/instance/instance_map")
        client.subscribe(DiagnosticArray, "/diagnostics")
        pub = client.publisher(Image, f"{ns}/image")
        assert client.wait_for(lambda: pub.get_subscription_count() > 0, 90), node.output
        compared = 0
        for i, frame in enumerate(scene_frames((256, 512), 2, seed=10_200)):
            msg = stamped(image_msg(frame, Header(), "rgb8"), client, f"f{i}")
            got = publish_until(client, pub, msg, f"{ns}/instance/instance_map", timeout=60)
            assert got is not None, node.output
            published = np.frombuffer(bytes(got.data), "<u2").reshape(got.height, got.width)
            expected = torch_core.segment([DecodedImage(frame, ColorOrder.RGB)])[0]
            assert len(expected.instances) >= 1
            assert (published == expected.instance_map).mean() >= 0.98
            compared += 1
        assert compared == 2
        assert client.wait_for(lambda: latest_diagnostics(client, ns).get("instance_backend") == "onnxruntime", 10)
    finally:
        client.close()
        assert node.stop() == 0, node.output


@pytest.mark.parametrize("flag", ["param", "option"])
def test_export_cli_writes_where_the_config_or_the_flag_says(tmp_path: Path, flag: str) -> None:
    """`-p engines_dir=DIR` (where the nodes would look) is honoured; `--engines-dir` wins over it."""
    from seg_perception.apps.cli import main

    via_param, via_flag = tmp_path / "param", tmp_path / "flag"
    args = [
        "export",
        "--model",
        "instance",
        "-p",
        f"engines_dir={via_param}",
        "-p",
        "input_height=64",
        "-p",
        "input_width=128",
        "--accuracy-frames",
        "0",
    ]
    if flag == "option":
        args += ["--engines-dir", str(via_flag)]
    assert main(args) == 0
    written = via_flag if flag == "option" else via_param
    assert sorted(p.name for p in written.glob("*.onnx")) == [
        f"maskrcnn_mobilenet_v3_large_fpn_64x128_fp32.{part}.onnx" for part in ("backbone", "box_head", "mask_head")
    ]
    assert flag == "param" or not via_param.exists()
