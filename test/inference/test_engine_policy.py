"""engine_policy: start-up is never blocked by an engine build.

A real TensorRT-RTX build of a 128x256 DeepLab in a child process while the model serves on
its fallback; the node over DDS keeps publishing while its engine builds and says on
/diagnostics why it stays on the fallback (no GPU here); ``require`` refuses to start
without an engine; ``never`` leaves TensorRT out even where an engine and a runtime exist.
The switch to a running engine needs a GPU: here it is driven with a stand-in runtime and
backend (``test_a_built_engine_is_switched_to_where_a_runtime_can_run_it``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.config.records import SemanticModelConfig
from seg_perception.errors import ConfigError
from seg_perception.inference import artifacts, engine_policy, registry
from seg_perception.inference.artifacts import check_sidecar, sidecar_path
from seg_perception.inference.base import SemanticOutput
from seg_perception.inference.tensorrt_library import import_tensorrt
from seg_perception.io.image import ColorOrder, DecodedImage
from seg_perception.pipeline import semantic as semantic_module
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.tools.harness import GraphClient, NodeProcess, node_command, node_env
from test.ros.helpers import latest_diagnostics, make_image, stamped

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install -r requirements-accel.txt)")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt_rtx") is None,
    reason="TensorRT-RTX not installed (pip install -r requirements-accel.txt)",
)
MODULE = "seg_perception.ros.semantic_node"
BUILD_TIMEOUT_S = 150


class FakeBackend:
    """Stands in for a backend: every pixel gets ``value``."""

    def __init__(self, name: str, value: int, delay: float = 0.0) -> None:
        self.name, self.device, self.precision = name, "cuda:0" if name == "tensorrt" else "cpu", "fp32"
        self.value, self.delay = value, delay

    def run(self, frames: np.ndarray, with_confidence: bool = False) -> SemanticOutput:
        time.sleep(self.delay)
        ids = np.full(frames.shape[:3], self.value, np.uint8)
        return SemanticOutput(ids, ids.copy() if with_confidence else None)


def stand_in_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TensorRT runtime on a GPU the engine was built for, whatever this host has (none
    here; on a GPU host the real GPU may be one the engine does not target, e.g. an H200)."""
    monkeypatch.setattr(engine_policy, "tensorrt_runtime_problem", lambda device="cuda": None)
    monkeypatch.setattr(artifacts, "current_gpu", lambda index=None: None)


def frame(seed: int = 0) -> DecodedImage:
    return DecodedImage(np.random.default_rng(seed).integers(0, 256, (96, 160, 3), np.uint8), ColorOrder.RGB)


def config(params: dict, engines: Path, policy: str, **overrides: object) -> SemanticModelConfig:
    return SemanticModelConfig.from_params(
        {**params, "backend": "auto", "engine_policy": policy, "engines_dir": str(engines), **overrides}
    )


@pytest.fixture(scope="module")
def background_build(small_semantic_params: dict, tmp_path_factory: pytest.TempPathFactory):
    """A segmenter under build_in_background with no engine: it serves on torch while a child
    process exports the ONNX and builds the engine (TensorRT-RTX, real)."""
    engines = tmp_path_factory.mktemp("engines")
    seg = SemanticSegmenter.from_config(config(small_semantic_params, engines, "build_in_background"))
    events: list[tuple[str, str]] = []
    started = time.monotonic()
    build = seg.start_engine_build(lambda level, msg: events.append((level, msg)))
    returned_after = time.monotonic() - started
    states, served = [], 0
    while build is not None and not build.wait(0.05) and time.monotonic() - started < BUILD_TIMEOUT_S:
        states.append(seg.engine_status())
        seg.segment([frame(served)])  # the model keeps serving while the child builds
        served += 1
        time.sleep(0.2)  # a camera's pace, not a busy loop: the build shares two cores with it
    yield seg, build, events, states, served, returned_after, engines
    seg.close()


@pytest.mark.slow
def test_background_build_goes_building_to_built_and_stays_on_the_fallback_without_a_gpu(background_build) -> None:
    seg, build, events, states, served, returned_after, _ = background_build
    assert build is not None and returned_after < 2.0, "start_engine_build must return at once"
    assert build.state == "built", (build.error, build.job.log_path.read_text()[-2000:])
    assert states and states[0].startswith("building"), states[:3]
    assert served >= 3, "the segmenter should have served frames during the build"
    engine = Path(build.job.engine)
    assert engine.is_file() and sidecar_path(engine).is_file() and Path(build.job.onnx).is_file()
    side = check_sidecar(engine, build.job.onnx, "fp32")
    # The child builds with the first importable library: TensorRT-RTX here, TensorRT where installed.
    assert side["library"] == import_tensorrt().name and side["input"]["max"] == [4, 128, 256, 3]
    # The config serves on the CPU: no engine can run for it on any host, GPU or not; the
    # reason is what this host's runtime check says (no GPU here; a CPU device on a GPU host).
    runtime = engine_policy.tensorrt_runtime_problem(seg.config.device)
    assert runtime is not None
    assert seg.backend.name == "torch"
    status = seg.engine_status()
    assert status.startswith(f"built {engine}") and "staying on torch: no TensorRT runtime usable here" in status
    assert runtime in status
    if not torch.cuda.is_available():
        assert "torch sees no CUDA GPU" in status
    diag = seg.engine_diagnostics()
    assert diag["engine_policy"] == "build_in_background" and diag["engine_build_s"] > 0
    assert any("child process builds" in msg for _, msg in events) and events[-1][0] == "warning"


@pytest.mark.slow
def test_a_built_engine_is_switched_to_where_a_runtime_can_run_it(background_build, monkeypatch) -> None:
    """The switch path with a stand-in runtime: the decision says yes, the engine backend
    (a fake here) replaces the fallback, the next batch runs on it."""
    seg, build, *_ = background_build
    stand_in_runtime(monkeypatch)
    assert engine_policy.switch_decision(seg.engine_plan, "cuda") is None
    fallback = seg.backend
    monkeypatch.setattr(semantic_module, "open_engine_backend", lambda cfg, plan: FakeBackend("tensorrt", 7))
    try:
        seg._engine_built(build)  # what the watcher thread runs when the child ends
        assert seg.backend.name == "tensorrt"
        assert "switched from torch to tensorrt" in seg.engine_status()
        assert (seg.segment([frame()])[0].class_map == 7).all()
    finally:
        seg.switch_backend(fallback)


def test_switch_backend_between_batches_never_mixes_backends() -> None:
    """Batches run while another thread switches back and forth: each result comes wholly
    from one backend."""
    seg = SemanticSegmenter(config_stub(), FakeBackend("torch", 1, delay=0.002), labels_stub())
    a, b = seg.backend, FakeBackend("tensorrt", 2, delay=0.002)
    stop = threading.Event()

    def switcher() -> None:
        while not stop.is_set():
            seg.switch_backend(b if seg.backend is a else a)
            time.sleep(0.001)

    thread = threading.Thread(target=switcher)
    thread.start()
    seen = set()
    try:
        for i in range(100):
            result = seg.segment([frame(i), frame(i + 1)])
            values = {int(v) for r in result for v in np.unique(r.class_map)}
            assert len(values) == 1, values
            seen |= values
    finally:
        stop.set()
        thread.join()
    assert seen == {1, 2}


def config_stub() -> SemanticModelConfig:
    return SemanticModelConfig(
        model="deeplabv3_mobilenet_v3_large",
        checkpoint="",
        labels="cityscapes",
        input_height=64,
        input_width=128,
        backend="auto",
        device="cpu",
        precision="fp32",
        engines_dir="engines",
    )


def labels_stub():
    from seg_perception.labels import load_label_set

    return load_label_set("cityscapes")


@pytest.mark.slow
def test_never_leaves_tensorrt_out_even_with_an_engine_and_a_runtime(
    background_build, small_semantic_params: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, engines = background_build
    stand_in_runtime(monkeypatch)
    monkeypatch.setitem(registry.SEMANTIC_BACKENDS, "tensorrt", lambda *args: FakeBackend("tensorrt", 3))
    # With a runtime (stand-in) and the valid engine built above, the other policies take it ...
    assert (
        SemanticSegmenter.from_config(config(small_semantic_params, engines, "build_in_background")).backend.name
        == "tensorrt"
    )
    assert SemanticSegmenter.from_config(config(small_semantic_params, engines, "require")).backend.name == "tensorrt"
    # ... never does not, and starts no build.
    seg = SemanticSegmenter.from_config(config(small_semantic_params, engines, "never"))
    assert seg.backend.name == "onnxruntime"  # the ONNX the build exported is there
    assert seg.start_engine_build() is None and seg.engine_status() == "not used (engine_policy never)"


def test_auto_policy_is_never_without_a_gpu_and_require_with_backend_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_policy.resolve_policy("auto", "auto", "cpu") == ("never", "auto without a CUDA GPU")
    # device auto resolves to the GPU where there is one: the no-GPU answer needs no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert engine_policy.resolve_policy("auto", "auto", "auto") == ("never", "auto without a CUDA GPU")
    monkeypatch.undo()
    assert engine_policy.resolve_policy("auto", "tensorrt", "cuda")[0] == "require"
    assert engine_policy.resolve_policy("auto", "torch", "cpu")[0] == "never"
    with pytest.raises(ConfigError, match="require needs backend auto or tensorrt"):
        engine_policy.resolve_policy("require", "onnxruntime", "cpu")
    with pytest.raises(ConfigError, match="never contradicts backend tensorrt"):
        engine_policy.resolve_policy("never", "tensorrt", "cuda")


def test_engine_policy_parameter_is_validated(small_semantic_params: dict) -> None:
    with pytest.raises(ConfigError, match="engine_policy"):
        SemanticModelConfig.from_params({**small_semantic_params, "engine_policy": "sometimes"})


def test_require_without_an_engine_refuses_with_the_build_command(small_semantic_params: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"engine_policy require: no engine at .*seg-perception build-engine"):
        SemanticSegmenter.from_config(config(small_semantic_params, tmp_path, "require"))


@pytest.mark.slow
def test_require_with_a_valid_engine_but_no_gpu_refuses(background_build, small_semantic_params: dict) -> None:
    *_, engines = background_build
    runtime = engine_policy.tensorrt_runtime_problem(small_semantic_params["device"])  # device cpu: never usable
    assert runtime is not None
    with pytest.raises(ConfigError, match=rf"no TensorRT runtime usable here \({re.escape(runtime)}\)"):
        SemanticSegmenter.from_config(config(small_semantic_params, engines, "require"))


@pytest.mark.ros
@pytest.mark.slow
def test_node_under_require_without_an_engine_exits_2_with_one_line(
    small_semantic_params: dict, tmp_path: Path
) -> None:
    params = dict(small_semantic_params, backend="auto", engine_policy="require", engines_dir=str(tmp_path))
    proc = subprocess.run(
        node_command(MODULE, "/req", params), env=node_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "engine_policy require" in errors[0] and "seg-perception build-engine" in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_node_serves_without_a_gap_while_its_engine_builds(
    background_build,
    small_semantic_params: dict,
    tmp_path: Path,
) -> None:
    """build_in_background, no engine: outputs from the first frame on, none missing for long
    while the child builds; /diagnostics: building on the fallback, then why it stays there.
    The ONNX exported by the fixture's build is copied in (the export path is covered above),
    so the node falls back to ONNX Runtime and the child only builds the engine."""
    onnx = Path(background_build[1].job.onnx)
    shutil.copy(onnx, tmp_path / onnx.name)
    fallback = "onnxruntime"
    ns = "/cam_engine"
    params = dict(
        small_semantic_params,
        backend="auto",
        engine_policy="build_in_background",
        engines_dir=str(tmp_path),
        diagnostics_period=0.5,
        publish_overlay=False,
        publish_confidence=False,
    )
    node = NodeProcess(MODULE, ns, params)
    client = GraphClient("engine_client")
    try:
        client.subscribe(Image, f"{ns}/semantic/class_map")
        client.subscribe(DiagnosticArray, "/diagnostics")
        pub = client.publisher(Image, f"{ns}/image")
        assert client.wait_for(lambda: pub.get_subscription_count() > 0 or node.proc.poll() is not None, 60)
        assert node.proc.poll() is None, node.output
        msg = make_image("rgb8", 320, 240)
        statuses: list[tuple[float, str, str]] = []  # (time, backend, engine_status)
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while time.monotonic() < deadline:
            pub.publish(stamped(msg, client, "load"))
            diag = latest_diagnostics(client, ns)
            if diag.get("engine_status") and (not statuses or statuses[-1][2] != diag["engine_status"]):
                statuses.append((time.monotonic(), diag.get("backend", ""), diag["engine_status"]))
            if diag.get("engine_status", "").startswith("built"):
                break
            time.sleep(0.1)
        for _ in range(10):  # a few more frames after the build
            pub.publish(stamped(msg, client, "load"))
            time.sleep(0.1)
        final = statuses[-1] if statuses else (0.0, "", "")
        assert final[2].startswith("built"), (statuses, node.output[-3000:])
        building = [s for s in statuses if s[2].startswith("building")]
        assert building and all(backend == fallback for _, backend, _ in building), statuses
        assert final[1] == fallback and f"staying on {fallback}: no TensorRT runtime usable here" in final[2], final
        # Outputs kept coming while the engine built: no gap longer than a few model latencies.
        times = [t for t, m in client.timed(f"{ns}/semantic/class_map") if m.header.frame_id == "load"]
        window = [t for t in times if building[0][0] - 1.0 <= t <= final[0]]
        assert len(window) >= 5, (len(times), statuses)
        gaps = np.diff(times)
        assert gaps.max() < max(2.0, 6 * float(np.median(gaps))), (gaps.max(), np.median(gaps))
        engine = Path(tmp_path) / "deeplabv3_mobilenet_v3_large_128x256_fp32.engine"
        assert engine.is_file() and sidecar_path(engine).is_file()
        assert float(latest_diagnostics(client, ns).get("engine_build_s", 0)) > 0
        assert "child process builds" in node.output
    finally:
        client.close()
        code = node.stop()
    assert code == 0, node.output


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_background_build_switches_to_the_engine_for_real(small_semantic_params: dict, tmp_path: Path) -> None:
    """On a GPU with a TensorRT runtime: serves on the fallback while the child builds, then
    the next batches run on the engine, with the class maps the fallback gave."""
    from seg_perception.inference.tensorrt_library import RTX_DEFAULT_CC, current_gpu, rtx_cc_matches

    problem = engine_policy.tensorrt_runtime_problem("cuda")
    if problem is not None:
        pytest.skip(f"no TensorRT runtime usable here: {problem}")
    gpu = current_gpu()
    if import_tensorrt().is_rtx and gpu is not None and not rtx_cc_matches(gpu.cc, RTX_DEFAULT_CC):
        pytest.skip(f"the child builds for TensorRT-RTX's default targets, which leave out {gpu.cc}")
    seg = SemanticSegmenter.from_config(config(small_semantic_params, tmp_path, "build_in_background", device="cuda"))
    fallback = seg.backend.name
    assert fallback != "tensorrt"
    before = seg.segment([frame(1)])[0].class_map
    build = seg.start_engine_build()
    served = 0
    try:
        while build is not None and not build.wait(0.05):
            seg.segment([frame(served)])
            served += 1
    finally:
        seg.close()
    assert build is not None and build.state == "built", build.error
    assert seg.backend.name == "tensorrt", seg.engine_status()
    assert f"switched from {fallback} to tensorrt" in seg.engine_status() and served >= 1
    after = seg.segment([frame(1)])[0].class_map
    assert (after == before).mean() >= 0.99
