"""ONNX export (fp32/fp16/int8), the ONNX Runtime backend, TensorRT engine builds with a real
TensorRT builder (TensorRT-RTX, no GPU needed), engine sidecars and the TensorRT backend's
refusal without a GPU.

Everything runs at 128x256 so the file stays well under three minutes on two cores; the
fp16/int8 exports and the engine builds are marked slow (they stay in CI).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from seg_perception.errors import BackendError, SegPerceptionError
from seg_perception.export.errors import OnnxExportError
from seg_perception.export.onnx import MIN_AGREEMENT, export_semantic_onnx, verification_frames
from seg_perception.inference.artifacts import read_onnx_metadata
from seg_perception.inference.base import SemanticBackend
from seg_perception.inference.torch_backend import TorchSemanticBackend
from test.conftest import spatially_varied_model

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install -r requirements-accel.txt)")

SIZE = (128, 256)  # (height, width)
HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
HAS_MODELOPT = importlib.util.find_spec("modelopt") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX not installed (pip install -r requirements-accel.txt)")
needs_modelopt = pytest.mark.skipif(not HAS_MODELOPT, reason="nvidia-modelopt not installed")


def varied_frames(seed: int) -> np.ndarray:
    """Inputs unlike the export's own check frames: smooth scenes, pure noise, flat colours."""
    rng = np.random.default_rng(seed)
    smooth = verification_frames(SIZE, count=3, seed=100 + seed)
    noise = rng.integers(0, 256, (1, *SIZE, 3), np.uint8)
    flat = np.broadcast_to(rng.integers(0, 256, (1, 1, 1, 3), np.uint8), (1, *SIZE, 3))
    ramp = np.broadcast_to(np.linspace(0, 255, SIZE[1], dtype=np.float32)[None, None, :, None], (1, *SIZE, 3))
    return np.ascontiguousarray(np.concatenate([smooth, noise, flat, ramp.astype(np.uint8)]))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return spatially_varied_model(seed=1234)


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return verification_frames(SIZE, count=8, seed=5)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def onnx_fp32(model: torch.nn.Module, artifacts: Path) -> Path:
    return export_semantic_onnx(model, artifacts / "semantic_fp32.onnx", SIZE, "fp32", max_batch=4)


@pytest.fixture(scope="module")
def onnx_by_precision(model: torch.nn.Module, calib: np.ndarray, artifacts: Path, onnx_fp32: Path) -> dict[str, Path]:
    if not HAS_MODELOPT:
        pytest.skip("nvidia-modelopt not installed")
    return {
        "fp32": onnx_fp32,
        "fp16": export_semantic_onnx(model, artifacts / "semantic_fp16.onnx", SIZE, "fp16", calib, max_batch=4),
        "int8": export_semantic_onnx(model, artifacts / "semantic_int8.onnx", SIZE, "int8", calib, max_batch=4),
    }


@pytest.fixture(scope="module")
def engines(onnx_by_precision: dict[str, Path]) -> dict[str, tuple[Path, dict]]:
    if not HAS_RTX:
        pytest.skip("TensorRT-RTX not installed")
    from seg_perception.export.engine_build import build_engine

    built = {}
    for precision, onnx_path in onnx_by_precision.items():
        engine = onnx_path.with_suffix(".engine")
        side = build_engine(
            onnx_path,
            engine,
            precision,
            min_batch=1,
            opt_batch=1,
            max_batch=4,
            library="tensorrt_rtx",
            workspace_mb=1024,
        )
        built[precision] = (engine, side)
    return built


# --------------------------------------------------------------------------- ONNX Runtime


def test_ort_fp32_class_maps_match_torch_on_varied_inputs(model: torch.nn.Module, onnx_fp32: Path) -> None:
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    ort_backend = OnnxRuntimeSemanticBackend(onnx_fp32, "cpu", "fp32")
    torch_backend = TorchSemanticBackend(model, "cpu", "fp32")
    assert isinstance(ort_backend, SemanticBackend)
    assert (ort_backend.name, ort_backend.device, ort_backend.precision) == ("onnxruntime", "cpu", "fp32")
    frames = varied_frames(seed=1)
    ref = torch_backend.run(frames, with_confidence=True)
    assert len(np.unique(ref.class_ids)) >= 3, "the test model must not predict one class everywhere"
    got = ort_backend.run(frames, with_confidence=True)
    assert got.class_ids.dtype == np.uint8 and got.class_ids.shape == (len(frames), *SIZE)
    assert (got.class_ids == ref.class_ids).mean() >= 0.999
    assert got.confidence is not None and got.confidence.dtype == np.uint8
    assert np.abs(got.confidence.astype(int) - ref.confidence.astype(int)).max() <= 1
    one = ort_backend.run(frames[2:3])
    assert one.confidence is None and np.array_equal(one.class_ids[0], got.class_ids[2])


def test_fp32_export_records_what_was_verified(model: torch.nn.Module, onnx_fp32: Path) -> None:
    from seg_perception.inference.artifacts import weights_fingerprint

    meta = read_onnx_metadata(onnx_fp32)
    assert meta["precision"] == "fp32" and meta["input_size"] == "128x256" and meta["max_batch"] == "4"
    assert float(meta["agreement_vs_torch_fp32"]) >= MIN_AGREEMENT["fp32"]
    assert meta["weights_sha256"] == weights_fingerprint(model)
    import onnx

    graph = onnx.load(str(onnx_fp32)).graph
    assert [i.name for i in graph.input] == ["frames"] and [o.name for o in graph.output] == ["class_ids", "confidence"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis


def test_export_refuses_a_graph_below_its_gate_and_writes_nothing(model: torch.nn.Module, tmp_path: Path) -> None:
    target = tmp_path / "refused.onnx"
    with pytest.raises(OnnxExportError, match="refusing to write it"):
        export_semantic_onnx(model, target, (64, 128), "fp32", min_agreement=1.01)  # unreachable gate
    assert not target.exists() and not list(tmp_path.iterdir())


def test_int8_export_needs_calibration_frames(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match="int8 export needs calibration frames"):
        export_semantic_onnx(model, tmp_path / "x.onnx", SIZE, "int8")
    with pytest.raises(OnnxExportError, match="resize them first"):
        export_semantic_onnx(model, tmp_path / "x.onnx", SIZE, "int8", np.zeros((2, 64, 64, 3), np.uint8))


def test_ort_backend_checks_precision_and_input_size(onnx_fp32: Path, tmp_path: Path) -> None:
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    with pytest.raises(BackendError, match="is a fp32 graph, the backend was asked for fp16"):
        OnnxRuntimeSemanticBackend(onnx_fp32, "cpu", "fp16")
    with pytest.raises(BackendError, match=r"ONNX file not found.*seg-perception export"):
        OnnxRuntimeSemanticBackend(tmp_path / "missing.onnx", "cpu", "fp32")
    backend = OnnxRuntimeSemanticBackend(onnx_fp32, "cpu", "fp32")
    with pytest.raises(BackendError, match="takes 256x128"):
        backend.run(np.zeros((1, 64, 128, 3), np.uint8))


def test_ort_backend_without_onnxruntime_names_the_install(monkeypatch: pytest.MonkeyPatch, onnx_fp32: Path) -> None:
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails like a missing package
    with pytest.raises(BackendError, match=r"needs the onnxruntime package: pip install -r requirements-accel.txt"):
        OnnxRuntimeSemanticBackend(onnx_fp32, "cpu", "fp32")


def test_ort_from_model_serves_any_size_and_reuses_a_matching_file(model: torch.nn.Module, tmp_path: Path) -> None:
    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    path = tmp_path / "dyn.onnx"
    backend = OnnxRuntimeSemanticBackend.from_model(model, "cpu", "fp32", onnx_path=path)
    assert read_onnx_metadata(path)["dynamic_size"] == "true"
    ref = TorchSemanticBackend(model, "cpu", "fp32")
    for shape in ((2, 64, 128, 3), (1, 96, 160, 3)):
        frames = np.random.default_rng(shape[1]).integers(0, 256, shape, np.uint8)
        assert (backend.run(frames).class_ids == ref.run(frames).class_ids).mean() >= 0.999
    stamp = path.stat().st_mtime_ns
    OnnxRuntimeSemanticBackend.from_model(model, "cpu", "fp32", onnx_path=path)
    assert path.stat().st_mtime_ns == stamp  # same weights and precision: not exported again
    with pytest.raises(BackendError, match="is a fp32 graph, int8 was asked for; re-export it"):
        OnnxRuntimeSemanticBackend.from_model(model, "cpu", "int8", onnx_path=path)
    with pytest.raises(BackendError, match="int8 needs an int8 ONNX exported with calibration frames"):
        OnnxRuntimeSemanticBackend.from_model(model, "cpu", "int8", onnx_path=tmp_path / "none.onnx")
    other = spatially_varied_model(seed=7)
    with pytest.raises(BackendError, match="exported from other weights"):
        OnnxRuntimeSemanticBackend.from_model(other, "cpu", "fp32", onnx_path=path)
    assert path.stat().st_mtime_ns == stamp  # refused, never overwritten


@pytest.mark.slow
@needs_modelopt
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_autocast_and_int8_qdq_exports_run_in_ort(
    precision: str, model: torch.nn.Module, onnx_by_precision: dict[str, Path]
) -> None:
    import onnx

    from seg_perception.inference.onnxruntime_backend import OnnxRuntimeSemanticBackend

    path = onnx_by_precision[precision]
    graph = onnx.load(str(path)).graph
    ops = Counter(n.op_type for n in graph.node)
    init_types = Counter(onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in graph.initializer)
    if precision == "fp16":
        assert init_types["float16"] > 0 and ops["QuantizeLinear"] == 0
    else:
        assert ops["QuantizeLinear"] >= 50 and ops["DequantizeLinear"] >= 50 and init_types["int8"] > 0
    meta = read_onnx_metadata(path)
    assert meta["precision"] == precision and float(meta["agreement_vs_torch_fp32"]) >= MIN_AGREEMENT[precision]
    backend = OnnxRuntimeSemanticBackend(path, "cpu", precision)
    frames = varied_frames(seed=2)
    out = backend.run(frames, with_confidence=True)
    ref = TorchSemanticBackend(model, "cpu", "fp32").run(frames)
    assert out.class_ids.shape == (len(frames), *SIZE) and out.confidence is not None
    assert (out.class_ids == ref.class_ids).mean() >= MIN_AGREEMENT[precision]


# --------------------------------------------------------------------------- TensorRT


@pytest.mark.slow
@needs_rtx
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_rtx_builds_a_real_engine_with_its_sidecar(
    precision: str, engines: dict[str, tuple[Path, dict]], onnx_by_precision: dict[str, Path]
) -> None:
    from seg_perception.inference.artifacts import check_sidecar, sidecar_path

    engine, side = engines[precision]
    assert engine.stat().st_size > 1_000_000  # a serialized plan with the weights inside
    on_disk = json.loads(sidecar_path(engine).read_text())
    assert on_disk == side
    assert side["library"] == "tensorrt_rtx" and side["library_version"] == "1.7.1.116"
    assert side["precision"] == precision and side["strongly_typed"] is True
    assert side["input"]["min"] == [1, 128, 256, 3] and side["input"]["max"] == [4, 128, 256, 3]
    assert [o["name"] for o in side["outputs"]] == ["class_ids", "confidence"]
    assert all(o["dtype"] == "UINT8" for o in side["outputs"])
    assert side["rtx_targets"] == [] and side["build_seconds"] > 0
    assert "build-engine" in side["rebuild_command"]
    assert check_sidecar(engine, onnx_by_precision[precision], precision, gpu=None) == side


@pytest.mark.slow
@needs_rtx
def test_sidecar_check_refuses_every_mismatch(
    engines: dict[str, tuple[Path, dict]], onnx_by_precision: dict[str, Path], tmp_path: Path
) -> None:
    from seg_perception.inference.artifacts import SidecarMismatchError, check_sidecar, sidecar_path
    from seg_perception.inference.tensorrt_library import GpuInfo, TrtLibrary, import_tensorrt

    src, _ = engines["fp16"]
    engine = tmp_path / src.name
    shutil.copy(src, engine)
    shutil.copy(sidecar_path(src), sidecar_path(engine))
    onnx_path = onnx_by_precision["fp16"]
    original = json.loads(sidecar_path(engine).read_text())
    rtx = import_tensorrt("tensorrt_rtx")

    def refused(edit: dict | None = None, **kw) -> str:
        sidecar_path(engine).write_text(json.dumps({**original, **(edit or {})}))
        with pytest.raises(SidecarMismatchError) as info:
            check_sidecar(
                engine,
                kw.pop("onnx", onnx_path),
                kw.pop("precision", "fp16"),
                gpu=kw.pop("gpu", None),
                library=kw.pop("library", rtx),
            )
        message = str(info.value)
        assert "\n" not in message and "rebuild it: seg-perception build-engine" in message
        return message

    assert "this machine has tensorrt_rtx 1.7.1.116" in refused({"library_version": "1.6.1.120"})
    assert "is fp16, int8 was asked for" in refused(precision="int8")
    assert "another ONNX graph" in refused(onnx=onnx_by_precision["fp32"])
    assert "this GPU (NVIDIA RTX A2000) is 8.6" in refused(
        {"rtx_targets": ["8.9", "12.0"]}, gpu=GpuInfo("NVIDIA RTX A2000", (8, 6))
    )
    # Turing runs TensorRT-RTX engines only when built for it; data-centre GPUs run none.
    assert "targets the default compute capabilities" in refused(gpu=GpuInfo("Quadro RTX 4000", (7, 5)))
    assert "TensorRT-RTX does not run on this GPU" in refused(gpu=GpuInfo("NVIDIA H200", (9, 0)))
    tensorrt_side = {
        "library": "tensorrt",
        "library_version": "10.13.3.9",
        "rtx_targets": None,
        "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
    }
    fake_trt10 = TrtLibrary(module=rtx.module, name="tensorrt", version="10.13.3.9")
    assert "this GPU is NVIDIA L4 (8.9)" in refused(tensorrt_side, gpu=GpuInfo("NVIDIA L4", (8, 9)), library=fake_trt10)
    if importlib.util.find_spec("tensorrt") is None:
        assert "which is not installed here" in refused(tensorrt_side, library=None)
    # The untouched sidecar passes, with a GPU that fits the default targets too.
    sidecar_path(engine).write_text(json.dumps(original))
    check_sidecar(engine, onnx_path, "fp16", gpu=GpuInfo("NVIDIA GeForce RTX 4090", (8, 9)), library=rtx)
    # A replaced engine file no longer matches its sidecar.
    engine.write_bytes(engine.read_bytes()[:-16] + b"\0" * 16)
    assert "does not match its sidecar" in refused()


def test_build_engine_refuses_precision_not_in_the_graph(onnx_fp32: Path, tmp_path: Path) -> None:
    from seg_perception.export.engine_build import build_engine
    from seg_perception.export.errors import EngineBuildError

    with pytest.raises(EngineBuildError, match="is a fp32 graph, not int8: precision lives in the ONNX graph"):
        build_engine(onnx_fp32, tmp_path / "x.engine", "int8")
    assert not (tmp_path / "x.engine").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_tensorrt_backend_says_in_one_line_why_it_cannot_run_here(tmp_path: Path) -> None:
    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend

    with pytest.raises(BackendError) as info:
        TensorRTSemanticBackend(tmp_path / "semantic_fp16.engine", "cuda", "fp16")
    assert str(info.value) == "backend tensorrt needs a CUDA GPU and torch sees none; use backend onnxruntime or torch"
    with pytest.raises(BackendError, match="runs on a CUDA GPU, device 'cpu'"):
        TensorRTSemanticBackend(tmp_path / "semantic_fp16.engine", "cpu", "fp16")
    assert isinstance(info.value, SegPerceptionError)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_library_missing_names_the_install(tmp_path: Path) -> None:
    from seg_perception.inference.tensorrt_library import import_tensorrt

    with pytest.raises(
        BackendError, match="no TensorRT library \\(tensorrt\\) is importable: install TensorRT: pip install"
    ):
        import_tensorrt("tensorrt")


# --------------------------------------------------------------------------- accuracy gate, calibration bags


def test_semantic_accuracy_gate_reports_miou_next_to_fp32_and_refuses_past_the_limit(
    model: torch.nn.Module, onnx_fp32: Path, tmp_path: Path
) -> None:
    from seg_perception.export.accuracy import AccuracyGateError, semantic_accuracy_gate

    report = semantic_accuracy_gate(model, onnx_fp32, "fp32", SIZE, frames=2)
    assert report.metric == "mIoU" and report.passed and abs(report.drop) < 0.5
    assert "torch fp32" in str(report) and "onnxruntime fp32" in str(report)
    copy = tmp_path / onnx_fp32.name
    shutil.copy(onnx_fp32, copy)
    with pytest.raises(AccuracyGateError, match=r"mIoU on 1 held-out scenes: .* \(max -1.00\); refused and removed"):
        semantic_accuracy_gate(model, copy, "fp32", SIZE, frames=1, max_drop=-1.0)
    assert not copy.exists()


@pytest.mark.parametrize(("storage", "compressed"), [("sqlite3", ""), ("mcap", "jpeg")])
def test_calibration_frames_come_from_a_bag_camera_topic(storage: str, compressed: str, tmp_path: Path) -> None:
    from seg_perception.export.calibration import bag_calibration_frames
    from seg_perception.synthetic.frames import generate_drive
    from seg_perception.synthetic.writers import write_drive_bag

    bag = write_drive_bag(tmp_path / "drive", generate_drive(3, 5, 128, 64), storage=storage, compressed=compressed)
    frames = bag_calibration_frames(bag, SIZE, limit=3)
    assert frames.dtype == np.uint8 and frames.shape == (3, *SIZE, 3)
    assert len({f.tobytes() for f in frames}) == 3  # evenly spaced over the drive, not one frame thrice
    with pytest.raises(SegPerceptionError, match="not in the bag"):
        bag_calibration_frames(bag, SIZE, topic="/nope")


# --------------------------------------------------------------------------- CUDA only

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_engine(onnx_fp32: Path, artifacts: Path) -> Path:
    """The fp32 semantic engine built for this GPU by the first TensorRT library installed
    (TensorRT-RTX names this GPU's compute capability); skipped where none can run here."""
    from seg_perception.export.engine_build import build_engine
    from seg_perception.inference.engine_policy import tensorrt_runtime_problem
    from seg_perception.inference.tensorrt_library import current_gpu, import_tensorrt

    problem = tensorrt_runtime_problem("cuda")
    if problem is not None:
        pytest.skip(f"no TensorRT runtime usable here: {problem}")
    gpu = current_gpu()
    targets = [gpu.cc] if import_tensorrt().is_rtx and gpu is not None else []
    engine = artifacts / "semantic_fp32_gpu.engine"
    build_engine(onnx_fp32, engine, "fp32", max_batch=4, rtx_targets=targets)
    return engine


@needs_cuda
@pytest.mark.slow
def test_cuda_tensorrt_runs_on_its_own_stream_ordered_with_the_callers(
    model: torch.nn.Module, onnx_fp32: Path, gpu_engine: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Class maps equal torch's whatever stream the caller is on; TensorRT gets a stream of
    its own (no legacy-default-stream warning) and the caller's stream sees its results."""
    import copy
    import logging

    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend

    frames = varied_frames(seed=3)
    want = TorchSemanticBackend(copy.deepcopy(model), "cpu", "fp32").run(frames).class_ids
    with caplog.at_level(logging.WARNING):
        backend = TensorRTSemanticBackend(gpu_engine, "cuda", "fp32", onnx_fp32)
        assert (backend.run(frames).class_ids == want).mean() >= 0.999  # default stream, chunks of 4
        caller = torch.cuda.Stream()
        with torch.cuda.stream(caller):
            inp = torch.from_numpy(frames[:4]).cuda(non_blocking=False)
            classes, _ = backend.infer(inp)
            got = classes.clone()  # queued on the caller's stream, after the engine
        caller.synchronize()
    assert backend._engine._stream.cuda_stream not in (caller.cuda_stream, torch.cuda.current_stream().cuda_stream)
    assert (got.cpu().numpy() == want[:4]).mean() >= 0.999
    assert not [r for r in caplog.records if "default stream" in r.getMessage().lower()]


@needs_cuda
@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA GPU")
def test_cuda_tensorrt_serves_on_a_non_zero_device_index(onnx_fp32: Path, gpu_engine: Path) -> None:
    from seg_perception.inference.tensorrt_backend import TensorRTSemanticBackend

    if torch.cuda.get_device_capability(1) != torch.cuda.get_device_capability(0):
        pytest.skip("the two GPUs differ: the engine was built for GPU 0")
    frames = varied_frames(seed=4)
    first = TensorRTSemanticBackend(gpu_engine, "cuda:0", "fp32", onnx_fp32)
    second = TensorRTSemanticBackend(gpu_engine, "cuda:1", "fp32", onnx_fp32)
    assert second.device == "cuda:1" and second._input.device == torch.device("cuda:1")
    assert np.array_equal(first.run(frames).class_ids, second.run(frames).class_ids)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens where no CUDA provider can load")
def test_auto_on_cuda_never_takes_onnxruntime_running_on_the_cpu(model: torch.nn.Module, onnx_fp32: Path) -> None:
    """onnxruntime without a CUDA provider that loads (the CPU package here; on a GPU host an
    onnxruntime-gpu built for another CUDA major than torch's) falls back to the CPU: `auto`
    asked for the GPU must not take that as its GPU backend."""
    import copy

    from seg_perception.inference.registry import SemanticArtifacts, create_semantic_backend

    artifacts = SemanticArtifacts(onnx=onnx_fp32, input_size=SIZE)
    with pytest.raises(BackendError) as info:
        create_semantic_backend("auto", "cuda", "fp32", lambda: copy.deepcopy(model), artifacts)
    message = str(info.value)
    assert "onnxruntime: no CUDA execution provider loads here" in message and "torch: " in message
    on_cpu = create_semantic_backend("auto", "cpu", "fp32", lambda: copy.deepcopy(model), artifacts)
    assert (on_cpu.name, on_cpu.device) == ("onnxruntime", "cpu")  # asked for the CPU: fine
