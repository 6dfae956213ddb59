"""The GPU path of the torch backend: pre-processing in torch, the frame runner and
its use by the segmenter, the bench and the combined core.

Everything device-independent runs here on the CPU; the tests marked ``needs_cuda`` check
what only a GPU can (CUDA graphs, fp16, streams) and are skipped without one.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from seg_perception.config.records import SemanticModelConfig, node_defaults
from seg_perception.inference.base import FullFrameBackend
from seg_perception.inference.gpu_preprocess import resize_frames
from seg_perception.inference.torch_backend import TorchSemanticBackend
from seg_perception.inference.torch_runner import TorchFrameRunner, group_frames
from seg_perception.io.image import ColorOrder, DecodedImage
from seg_perception.pipeline.preprocess import resize_batch
from seg_perception.pipeline.semantic import SemanticSegmenter

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
MODEL_SIZE = (256, 512)


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def _image(height: int, width: int, order: ColorOrder, seed: int) -> DecodedImage:
    shape = (height, width) if order is ColorOrder.MONO else (height, width, 3)
    return DecodedImage(_noise(shape, seed), order)


def _scene(width: int, height: int, seed: int, order: ColorOrder = ColorOrder.RGB) -> DecodedImage:
    from seg_perception.synthetic.frames import generate_frame

    rgb = generate_frame(seed, 0, width, height, "day").image
    if order is ColorOrder.BGR:
        return DecodedImage(np.ascontiguousarray(rgb[..., ::-1]), order)
    if order is ColorOrder.MONO:
        return DecodedImage(np.ascontiguousarray(rgb[..., 1]), order)
    return DecodedImage(rgb, order)


# ----------------------------------------------------------------------------- pre-processing


@pytest.mark.parametrize(
    ("src", "dst", "order"),
    [
        ((1080, 1920), MODEL_SIZE, ColorOrder.RGB),  # two 2x halvings, then 540x960 -> 256x512
        ((720, 1280), MODEL_SIZE, ColorOrder.RGB),  # one 2x2 halving, then bilinear
        ((1001, 1503), MODEL_SIZE, ColorOrder.RGB),  # odd sizes: halving is not exactly 2x
        ((700, 900), MODEL_SIZE, ColorOrder.BGR),  # width only halved, non-integer ratios
        ((200, 150), MODEL_SIZE, ColorOrder.RGB),  # upscale
        ((48, 97), (64, 128), ColorOrder.MONO),  # upscale, mono
        ((1080, 1920), MODEL_SIZE, ColorOrder.BGR),
        ((1080, 1920), MODEL_SIZE, ColorOrder.MONO),
    ],
)
def test_resize_frames_matches_resize_batch_within_one_grey_level(src, dst, order) -> None:
    images = [_image(*src, order, seed) for seed in (0, 1)]
    ref = resize_batch(images, dst)
    stacked = torch.from_numpy(np.stack([img.pixels for img in images]))
    ours = resize_frames(stacked, dst, order)
    assert ours.dtype == torch.uint8 and tuple(ours.shape) == ref.shape and ours.is_contiguous()
    diff = np.abs(ours.numpy().astype(int) - ref.astype(int))
    # cv2 uses 11-bit fixed-point weights and rounds after each halving; we stay in float
    assert diff.max() <= 1, np.unravel_index(diff.argmax(), diff.shape)
    assert (diff == 0).mean() >= 0.6  # mostly identical, not merely close


def test_resize_frames_fixes_colour_order_and_keeps_model_size_rgb_as_is() -> None:
    rgb = torch.tensor([[[[10, 20, 30], [40, 50, 60]]]], dtype=torch.uint8)  # (1, 1, 2, 3)
    assert resize_frames(rgb, (1, 2), ColorOrder.RGB) is rgb  # nothing to do: no copy
    assert resize_frames(rgb, (1, 2), ColorOrder.BGR).tolist() == [[[[30, 20, 10], [60, 50, 40]]]]
    mono = torch.tensor([[[7, 9]]], dtype=torch.uint8)  # (1, 1, 2)
    assert resize_frames(mono, (1, 2), ColorOrder.MONO).tolist() == [[[[7, 7, 7], [9, 9, 9]]]]
    # halves round up, as cv2 does (torch.round would give 0 and 2)
    pairs = torch.tensor([[[1, 0]], [[0, 5]]], dtype=torch.uint8)  # (2, 1, 2) -> (2, 1, 1)
    assert resize_frames(pairs, (1, 1), ColorOrder.MONO)[:, 0, 0, 0].tolist() == [1, 3]
    # 4x4 -> 1x1: one 2x2 box halving (1.75, 0.25, 0, 0), then bilinear to the centre: 0.5 -> 1
    block = torch.tensor([[[1, 2, 0, 0], [2, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], dtype=torch.uint8)
    assert resize_frames(block, (1, 1), ColorOrder.MONO).tolist() == [[[[1, 1, 1]]]]
    # 2x4 -> 1x2 needs no halving: one bilinear step samples between pixel pairs (1.75, 0.25)
    assert resize_frames(block[:, :2], (1, 2), ColorOrder.MONO)[0, 0, :, 0].tolist() == [2, 0]


def test_resize_frames_refuses_16_bit_and_wrongly_shaped_frames() -> None:
    with pytest.raises(TypeError, match="8-bit"):
        resize_frames(torch.zeros((1, 4, 4), dtype=torch.int16), (2, 2), ColorOrder.MONO)
    with pytest.raises(ValueError, match=r"rgb frames must be \(N, H, W, 3\)"):
        resize_frames(torch.zeros((1, 4, 4, 4), dtype=torch.uint8), (2, 2), ColorOrder.RGB)


def test_group_frames_packs_frames_of_one_shape_and_order_side_by_side() -> None:
    a, b, c = (_image(4, 6, ColorOrder.RGB, 0), _image(4, 6, ColorOrder.BGR, 1), _image(3, 5, ColorOrder.MONO, 2))
    groups = group_frames([a, b, a, c, b])
    assert [(g.shape, g.order, g.indices, g.offset) for g in groups] == [
        ((4, 6, 3), ColorOrder.RGB, (0, 2), 0),
        ((4, 6, 3), ColorOrder.BGR, (1, 4), 144),
        ((3, 5), ColorOrder.MONO, (3,), 288),
    ]
    with pytest.raises(TypeError, match="8-bit"):
        group_frames([DecodedImage(np.zeros((3, 5), np.uint16), ColorOrder.MONO)])


# ----------------------------------------------------------------------------- the runner


class _ShowInput(nn.Module):
    """A stand-in head whose "class ids" are the model input's red channel and whose
    "confidence" is its blue channel: the runner's assembled batch becomes visible."""

    def __init__(self, with_confidence: bool) -> None:
        super().__init__()
        self.with_confidence = with_confidence

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.with_confidence:
            return frames[..., 0].clone(), torch.empty(0, dtype=torch.uint8, device=frames.device)
        return frames[..., 0].clone(), frames[..., 2].clone()


@pytest.mark.parametrize("device", DEVICES)
def test_runner_builds_each_frames_model_input_in_its_batch_position(device: str) -> None:
    """Mixed sizes and colour orders, interleaved: every frame's input lands in its own slot,
    RGB at the model size; a second call with another mix reuses (and grows) the buffers."""
    runner = TorchFrameRunner({f: _ShowInput(f) for f in (False, True)}, device)
    big_rgb, big_bgr = _image(360, 640, ColorOrder.RGB, 0), _image(360, 640, ColorOrder.BGR, 1)
    small_mono, model_rgb = _image(60, 100, ColorOrder.MONO, 2), _image(64, 128, ColorOrder.RGB, 3)
    padded = np.zeros((360, 640 * 3 + 32), np.uint8)  # a message with step > width * 3
    padded[:, : 640 * 3] = _noise((360, 640 * 3), 4)
    strided = DecodedImage(
        np.lib.stride_tricks.as_strided(padded, (360, 640, 3), (padded.strides[0], 3, 1)), ColorOrder.RGB
    )
    batches = [
        [big_rgb, small_mono, big_bgr, model_rgb, big_rgb],
        [model_rgb, strided, big_bgr, big_bgr, small_mono, big_rgb, small_mono],  # more bytes: the arena grows
        [big_bgr],
    ]
    for images in batches:
        out = runner.run_images(images, (64, 128), with_confidence=True)
        ref = resize_batch(images, (64, 128))
        assert out.class_ids.shape == (len(images), 64, 128) and out.confidence is not None
        for got, want in ((out.class_ids, ref[..., 0]), (out.confidence, ref[..., 2])):
            assert np.abs(got.astype(int) - want.astype(int)).max() <= (1 if device == "cpu" else 2)
        for i, img in enumerate(images):  # a model-size RGB frame goes in untouched
            if img is model_rgb:
                assert np.array_equal(out.class_ids[i], model_rgb.pixels[..., 0])
    plain = runner.run_images(batches[0], (64, 128))
    assert plain.confidence is None
    assert runner.run_images([], (64, 128)).class_ids.shape == (0, 64, 128)


@pytest.mark.parametrize("device", DEVICES)
def test_runner_results_belong_to_the_caller(device: str) -> None:
    """Buffers are reused between calls; the arrays handed out never are."""
    runner = TorchFrameRunner({f: _ShowInput(f) for f in (False, True)}, device)
    first = runner.run_images([_image(64, 128, ColorOrder.RGB, 5)], (64, 128), with_confidence=True)
    kept = first.class_ids.copy()
    runner.run_images([_image(64, 128, ColorOrder.RGB, 6)], (64, 128), with_confidence=True)
    assert np.array_equal(first.class_ids, kept)


@pytest.fixture(scope="module")
def shipped() -> SemanticSegmenter:
    """The project's trained weights on the CPU path (cv2 resize, then backend.run)."""
    params = {**node_defaults("semantic"), "backend": "torch", "device": "cpu"}
    return SemanticSegmenter.from_config(SemanticModelConfig.from_params(params))


def _full_frame_segmenter(
    shipped: SemanticSegmenter, device: str, precision: str = "fp32", cuda_graphs: bool = True
) -> SemanticSegmenter:
    import copy

    # a copy: the backend moves (and casts) its model, the CPU segmenter keeps its own
    model = copy.deepcopy(shipped.backend._heads[False].model)
    backend = TorchSemanticBackend(model, device, precision, full_frames=True, cuda_graphs=cuda_graphs)
    return SemanticSegmenter(replace(shipped.config, device=device, precision=precision), backend, shipped.labels)


def test_segmenter_on_the_full_frame_path_gives_the_cpu_class_maps(
    shipped: SemanticSegmenter,
    monkeypatch,
) -> None:
    """The GPU path's control flow, run on the CPU: same weights, class maps equal to the
    cv2 path's on >= 99 % of pixels for each frame (1080p, 720p BGR, mono)."""
    full = _full_frame_segmenter(shipped, "cpu")
    assert isinstance(full.backend, FullFrameBackend) and full.backend.takes_full_frames
    assert not shipped.backend.takes_full_frames  # the CPU default keeps cv2's faster resize
    frames = [_scene(1920, 1080, 2), _scene(1280, 720, 3, ColorOrder.BGR), _scene(800, 600, 4, ColorOrder.MONO)]
    monkeypatch.setattr(full.backend, "run", lambda *a, **k: pytest.fail("full frames must not be resized on the host"))
    got = full.segment(frames, with_confidence=True)
    want = shipped.segment(frames, with_confidence=True)
    for g, w, img in zip(got, want, frames):
        assert g.class_map.shape == (img.height, img.width) and g.class_map.flags.c_contiguous
        assert (g.class_map == w.class_map).mean() >= 0.99
        assert g.confidence is not None and w.confidence is not None
        assert np.abs(g.confidence.astype(int) - w.confidence).mean() < 1.0
    assert len(np.unique(want[0].class_map)) >= 3  # a real scene, not one class everywhere


def test_bench_torch_case_keeps_fp16_only_where_cuda_runs_it() -> None:
    from seg_perception.apps.bench import _semantic_segmenter

    params = {**node_defaults("semantic"), "input_height": 64, "input_width": 128, "device": "cpu", "precision": "fp16"}
    seg = _semantic_segmenter(SemanticModelConfig.from_params(params), "torch", None)
    assert (seg.backend.name, seg.backend.device, seg.backend.precision) == ("torch", "cpu", "fp32")


# ----------------------------------------------------------------------------- CUDA only


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replay_equals_eager_execution(shipped: SemanticSegmenter, precision: str) -> None:
    graphed = _full_frame_segmenter(shipped, "cuda", precision)
    eager = _full_frame_segmenter(shipped, "cuda", precision, cuda_graphs=False)
    first, second = [_scene(1920, 1080, 5)], [_scene(1920, 1080, 6)]
    for frames in (first, second, first):  # replays must read the new input every time
        for conf in (False, True):
            a, b = graphed.segment(frames, with_confidence=conf)[0], eager.segment(frames, with_confidence=conf)[0]
            assert np.array_equal(a.class_map, b.class_map)
            assert (a.confidence is None) == (not conf)
            if conf:
                assert np.array_equal(a.confidence, b.confidence)
    runner = graphed.backend.runner
    assert runner.graphs_active and runner.captured == 2  # (1 frame, 256x512) x with/without confidence
    assert not eager.backend.runner.graphs_active
    a1 = graphed.segment(first)[0].class_map
    a2 = graphed.segment(second)[0].class_map
    assert not np.array_equal(a1, a2)  # different scenes: a stale static input would repeat a1


@needs_cuda
def test_cuda_fp16_full_frame_class_maps_match_the_cpu_fp32_path(shipped: SemanticSegmenter) -> None:
    gpu = _full_frame_segmenter(shipped, "cuda", "fp16")
    frames = [_scene(1920, 1080, 7), _scene(1280, 720, 8, ColorOrder.BGR), _scene(640, 480, 9, ColorOrder.MONO)]
    want = shipped.segment(frames)
    for _ in range(2):  # capture, then replay
        got = gpu.segment(frames)
        for g, w in zip(got, want):
            assert g.class_map.shape == w.class_map.shape
            assert (g.class_map == w.class_map).mean() >= 0.98  # fp16 + resize rounding


@needs_cuda
def test_cuda_batch_of_two_cameras_of_different_sizes_equals_each_alone(shipped: SemanticSegmenter) -> None:
    gpu = _full_frame_segmenter(shipped, "cuda", "fp16")
    left, right = _scene(1920, 1080, 10), _scene(1280, 800, 11, ColorOrder.BGR)
    both = gpu.segment([left, right], with_confidence=True)
    alone = [gpu.segment([img], with_confidence=True)[0] for img in (left, right)]
    cpu = shipped.segment([left, right])
    for b, a, c, img in zip(both, alone, cpu, (left, right)):
        assert b.class_map.shape == (img.height, img.width)
        assert (b.class_map == a.class_map).mean() >= 0.995  # batch size may change fp16 kernels
        assert (b.class_map == c.class_map).mean() >= 0.98


@needs_cuda
def test_cuda_graph_capture_failure_falls_back_to_eager_with_one_warning(
    shipped: SemanticSegmenter,
    monkeypatch,
    caplog,
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("capture not supported here")

    monkeypatch.setattr(torch.cuda, "graph", broken)
    gpu = _full_frame_segmenter(shipped, "cuda", "fp32")
    eager = _full_frame_segmenter(shipped, "cuda", "fp32", cuda_graphs=False)
    frame = [_scene(1280, 720, 12)]
    with caplog.at_level(logging.WARNING, logger="seg_perception.inference.torch_runner"):
        for _ in range(3):
            assert np.array_equal(gpu.segment(frame)[0].class_map, eager.segment(frame)[0].class_map)
        gpu.segment(frame + frame)
    assert len([r for r in caplog.records if "CUDA graph capture failed" in r.message]) == 1
    assert not gpu.backend.runner.graphs_active


@needs_cuda
def test_cuda_combined_core_on_two_streams_equals_the_models_run_one_after_the_other(
    shipped: SemanticSegmenter,
) -> None:
    from seg_perception.models.instance import build_instance_model, instance_class_names
    from seg_perception.pipeline.instance import InstanceSegmenter
    from seg_perception.pipeline.perception import PerceptionCore

    semantic = _full_frame_segmenter(shipped, "cuda", "fp16")
    size = (256, 512)
    names = instance_class_names(shipped.labels)
    model, _ = build_instance_model(
        "maskrcnn_mobilenet_v3_large_fpn",
        len(names),
        None,
        seed=3,
        min_size=min(size),
        max_size=max(size),
        class_names=names,
    )
    # a low threshold so an untrained model still yields instances to compare
    instance = InstanceSegmenter(model, shipped.labels, size, device="cuda", score_threshold=0.05)
    core = PerceptionCore(semantic, instance)
    assert set(core._streams) == {"semantic", "instance"}
    frames = [_scene(1920, 1080, 13), _scene(1280, 720, 14, ColorOrder.BGR)]
    try:
        sequential_sem = semantic.segment(frames)
        sequential_inst = instance.segment(frames)
        for _ in range(3):  # concurrently, on their own streams, several times
            results = core.run(frames)
            for r, s, i in zip(results, sequential_sem, sequential_inst):
                assert np.array_equal(r.semantic.class_map, s.class_map)
                # ~100 near-tied untrained detections: allow the odd reordering, catch garbage
                assert (r.instance.instance_map == i.instance_map).mean() >= 0.99
                assert r.panoptic is not None
        assert any(i.instances for i in sequential_inst), "no instances: the comparison would be empty"
    finally:
        core.close()


def test_a_capture_that_leaves_cuda_capturing_is_never_followed_by_silent_eager_runs(monkeypatch) -> None:
    """After a failed capture the runner goes eager only where the stream left capture mode;
    otherwise it stops with one BackendError line (torch's capture state cannot be made on a
    CPU machine: the probe's answer is what is stood in)."""
    from seg_perception.errors import BackendError

    runner = TorchFrameRunner({f: _ShowInput(f) for f in (False, True)}, "cpu")
    cause = RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(BackendError, match="CUDA graph capture failed and left CUDA unusable") as info:
        runner._check_capture_ended(cause)
    assert info.value.__cause__ is cause and "\n" not in str(info.value)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    runner._check_capture_ended(cause)  # capture ended cleanly: eager is safe


@needs_cuda
def test_cuda_graph_capture_failing_midway_falls_back_to_eager_only_with_cuda_intact(
    shipped: SemanticSegmenter, caplog
) -> None:
    """A failure after capture began (kernels already recorded): torch ends the capture, the
    probe finds the stream usable, eager results equal a runner that never captured."""
    gpu = _full_frame_segmenter(shipped, "cuda", "fp32")
    eager = _full_frame_segmenter(shipped, "cuda", "fp32", cuda_graphs=False)
    runner = gpu.backend.runner
    head = runner._heads[False]
    calls = {"n": 0}

    class FailsInCapture(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.head(x)
            calls["n"] += 1
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError("unsupported op during capture")
            return out

    runner._heads[False] = FailsInCapture()
    frame = [_scene(1280, 720, 15)]
    with caplog.at_level(logging.WARNING, logger="seg_perception.inference.torch_runner"):
        got = gpu.segment(frame)[0].class_map
    assert calls["n"] > 3  # warm-up runs, then the capture that failed midway, then eager
    assert not runner.graphs_active and "CUDA graph capture failed" in caplog.text
    assert np.array_equal(got, eager.segment(frame)[0].class_map)


@needs_cuda
def test_cuda_graphs_of_many_batch_sizes_share_one_memory_pool(shipped: SemanticSegmenter) -> None:
    """Eight batch sizes, eight graphs: the seven captured after the largest cost less memory
    together than the largest alone (one private pool per graph grew with every shape)."""
    gpu = _full_frame_segmenter(shipped, "cuda", "fp16")
    frames = [_scene(1280, 720, 20 + i) for i in range(8)]
    torch.cuda.synchronize()
    start = torch.cuda.memory_reserved()
    gpu.segment(frames)  # batch 8 first: the largest activations
    after_largest = torch.cuda.memory_reserved()
    for n in range(1, 8):
        gpu.segment(frames[:n])
    after_all = torch.cuda.memory_reserved()
    assert gpu.backend.runner.captured == 8
    assert after_all - after_largest < max(after_largest - start, 1), (start, after_largest, after_all)
    for n in (3, 8):  # replays after all captures still give each batch its own maps
        solo = [gpu.segment([f])[0].class_map for f in frames[:n]]
        for a, b in zip(gpu.segment(frames[:n]), solo):
            assert (a.class_map == b).mean() >= 0.995


@needs_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA GPU")
def test_cuda_torch_backend_on_a_non_zero_device_index(shipped: SemanticSegmenter) -> None:
    first = _full_frame_segmenter(shipped, "cuda:0", "fp32")
    second = _full_frame_segmenter(shipped, "cuda:1", "fp32")
    assert second.backend.runner.device == torch.device("cuda:1")
    frame = [_scene(1280, 720, 30)]
    assert (first.segment(frame)[0].class_map == second.segment(frame)[0].class_map).mean() >= 0.999


def test_combined_core_runs_the_first_batch_of_a_shape_with_the_instance_model_idle() -> None:
    """The first batch of a shape may capture CUDA graphs: the instance model must not run
    beside it. Later batches of that shape run both models at once. (The instance thread
    exists only on a GPU; here it is set up by hand around stand-ins that record overlap.)"""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from seg_perception.labels import load_label_set
    from seg_perception.pipeline.perception import PerceptionCore

    labels = load_label_set("cityscapes")
    running: set[str] = set()
    overlaps: list[bool] = []
    lock = threading.Lock()

    def model(name: str):
        def segment(images, **kwargs):
            with lock:
                running.add(name)
            time.sleep(0.05)
            with lock:
                overlaps.append(len(running) == 2)
                running.discard(name)
            return [None] * len(images)

        return segment

    semantic = SimpleNamespace(labels=labels, backend=SimpleNamespace(device="cpu"), segment=model("semantic"))
    instance = SimpleNamespace(labels=labels, device="cpu", segment=model("instance"))
    core = PerceptionCore(semantic, instance)  # type: ignore[arg-type]
    core._pool = ThreadPoolExecutor(max_workers=1)  # what a GPU host gets
    frames = [_image(8, 8, ColorOrder.RGB, 0)]
    concurrent = []
    try:
        for batch in (frames, frames, frames * 2, frames * 2, frames):
            overlaps.clear()
            assert len(core.run(batch)) == len(batch)
            concurrent.append(any(overlaps))
    finally:
        core.close()
    assert concurrent == [False, True, False, True, True]
