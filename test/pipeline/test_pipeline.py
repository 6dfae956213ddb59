"""Pre/post-processing, the frame buffer, checkpoints and the backend contract."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seg_perception.config.records import SemanticModelConfig
from seg_perception.errors import BackendError, CheckpointError, ConfigError
from seg_perception.inference.base import SemanticBackend
from seg_perception.inference.registry import SemanticArtifacts, create_semantic_backend
from seg_perception.io.image import ColorOrder, DecodedImage, decode_image
from seg_perception.metrics.latency import RollingStats
from seg_perception.models.semantic import build_semantic_model, read_checkpoint
from seg_perception.pipeline.overlays import blend_overlay
from seg_perception.pipeline.postprocess import upsample_nearest
from seg_perception.pipeline.preprocess import resize_batch
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.frame_buffer import LatestFrameBuffer


def test_resize_batch_converts_bgr_and_mono_to_rgb_at_model_size() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200  # red
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    mono = np.full((30, 50), 77, np.uint8)
    batch = resize_batch(
        [DecodedImage(rgb, ColorOrder.RGB), DecodedImage(bgr, ColorOrder.BGR), DecodedImage(mono, ColorOrder.MONO)],
        (16, 32),
    )
    assert batch.shape == (3, 16, 32, 3) and batch.dtype == np.uint8
    assert np.all(batch[0] == [200, 0, 0]) and np.all(batch[1] == [200, 0, 0])
    assert np.all(batch[2] == 77)


def test_resize_batch_reads_strided_views_without_changing_values() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (20, 30, 4), np.uint8)
    view = rgba[:, :, :3]  # zero-copy rgba8 decode gives such a view
    out = resize_batch([DecodedImage(view, ColorOrder.RGB)], (20, 30))
    assert np.array_equal(out[0], view)


def test_upsample_nearest_samples_pixel_centres() -> None:
    small = np.array([[1, 2], [3, 4]], np.uint8)
    big = upsample_nearest(small, (4, 4))
    assert np.array_equal(big, np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], np.uint8))
    odd = upsample_nearest(small, (3, 5))
    assert odd.shape == (3, 5) and odd[0, 0] == 1 and odd[-1, -1] == 4
    assert upsample_nearest(small, (2, 2)) is small


def test_blend_overlay_weights_palette_colour_by_alpha() -> None:
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (200, 100, 0)
    rgb = np.full((2, 2, 3), 100, np.uint8)
    out = blend_overlay(rgb, np.ones((2, 2), np.uint8), palette, 0.5)
    assert np.array_equal(out[0, 0], [150, 100, 50])


def test_frame_buffer_keeps_the_newest_frame_per_camera_and_counts_drops() -> None:
    buf = LatestFrameBuffer()
    for i in range(5):
        buf.put("front", i)
    buf.put("rear", "r0")
    assert buf.take(timeout=0) == {"front": 4, "rear": "r0"}
    snap = buf.snapshot()
    assert (snap["front"].received, snap["front"].dropped) == (5, 4)
    assert (snap["rear"].received, snap["rear"].dropped) == (1, 0)
    assert buf.take(timeout=0.01) == {}


def test_frame_buffer_close_wakes_a_waiting_worker() -> None:
    buf = LatestFrameBuffer()
    got = []
    worker = threading.Thread(target=lambda: got.append(buf.take(timeout=30)))
    worker.start()
    buf.close()
    worker.join(5)
    assert not worker.is_alive() and got == [{}]


def test_rolling_stats_percentiles_and_rate() -> None:
    stats = RollingStats(window=100)
    for i in range(100):
        stats.add((i + 1) / 1000, now=i * 0.1)
    p = stats.percentiles_ms()
    assert p["p50"] == pytest.approx(50.5) and p["p99"] == pytest.approx(99.01)
    assert stats.rate_hz(horizon_s=5.0, now=9.9) == pytest.approx(10.0, rel=0.05)


def test_checkpoint_errors_name_missing_and_unexpected_keys(tmp_path) -> None:
    model, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)
    state = model.state_dict()
    state.pop("classifier.4.bias")
    state["classifier.9.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"missing keys classifier\.4\.bias.*unexpected keys classifier\.9\.weight"
    ):
        build_semantic_model("deeplabv3_mobilenet_v3_large", 19, path)


def test_checkpoint_with_other_class_count_reports_shape_mismatch(tmp_path) -> None:
    model, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 21, None)
    path = tmp_path / "voc.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch classifier\.4\.weight"):
        build_semantic_model("deeplabv3_mobilenet_v3_large", 19, path)


def test_checkpoint_loads_torchvision_layout_with_aux_head_and_card_format(tmp_path) -> None:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(5)
    with_aux = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19, aux_loss=True)
    plain = tmp_path / "tv.pth"
    torch.save(with_aux.state_dict(), plain)
    model, meta = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, plain)
    assert meta == {}
    assert torch.equal(model.state_dict()["classifier.4.weight"], with_aux.state_dict()["classifier.4.weight"])
    card = tmp_path / "card.pth"
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"model": half, "meta": {"arch": "deeplabv3_mobilenet_v3_large", "labels": "cityscapes"}}, card)
    loaded, meta = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, card)
    assert meta["labels"] == "cityscapes"
    assert loaded.state_dict()["classifier.4.weight"].dtype == torch.float32
    with pytest.raises(CheckpointError, match="is a 'deeplabv3_mobilenet_v3_large' model"):
        build_semantic_model("deeplabv3_resnet50", 19, card)


def test_checkpoint_that_is_not_a_torch_file_is_rejected(tmp_path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        read_checkpoint(path)


def _small(**kw) -> SemanticModelConfig:
    base = {
        "model": "deeplabv3_mobilenet_v3_large",
        "checkpoint": "",
        "labels": "cityscapes",
        "input_height": 64,
        "input_width": 128,
        "backend": "torch",
        "device": "cpu",
        "precision": "fp32",
        "engines_dir": "engines",
    }
    return SemanticModelConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "backend_name",
    [
        "torch",
        pytest.param(
            "onnxruntime",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("onnxruntime") is None, reason="needs requirements-accel.txt"
            ),
        ),
        "auto",
        pytest.param(
            "tensorrt",
            marks=pytest.mark.skipif(
                not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None,
                reason="needs a CUDA GPU and TensorRT",
            ),
        ),
    ],
)
def test_every_backend_honours_the_semantic_backend_contract(backend_name: str, tmp_path) -> None:
    """One contract for all backends: uint8 (N, H, W, 3) in, uint8 class ids (+ confidence) out."""

    def build() -> torch.nn.Module:
        return build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)[0]

    artifacts, device = SemanticArtifacts(tmp_path / "s.onnx", None, (64, 128)), "cpu"
    if backend_name == "tensorrt":
        from seg_perception.export.engine_build import build_engine
        from seg_perception.export.onnx import export_semantic_onnx

        onnx_path = export_semantic_onnx(build(), tmp_path / "s.onnx", (64, 128), "fp32", max_batch=2)
        build_engine(onnx_path, tmp_path / "s.engine", "fp32", max_batch=2)
        artifacts, device = SemanticArtifacts(onnx_path, tmp_path / "s.engine", (64, 128)), "cuda"
    backend = create_semantic_backend(backend_name, device, "fp32", build, artifacts)
    assert isinstance(backend, SemanticBackend)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 128, 3), np.uint8)
    out = backend.run(frames, with_confidence=True)
    assert out.class_ids.shape == (2, 64, 128) and out.class_ids.dtype == np.uint8
    assert out.class_ids.max() < 19
    assert out.confidence is not None and out.confidence.shape == (2, 64, 128) and out.confidence.dtype == np.uint8
    plain = backend.run(frames)
    assert plain.confidence is None and np.array_equal(plain.class_ids, out.class_ids)
    single = backend.run(frames[1:])
    assert np.array_equal(single.class_ids[0], out.class_ids[1])  # batch entries are independent


def test_backend_selection_errors_are_clear() -> None:

    def build() -> torch.nn.Module:
        return build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None)[0]

    with pytest.raises(ConfigError, match="unknown backend"):
        create_semantic_backend("openvino", "cpu", "fp32", build)
    with pytest.raises(BackendError, match="fp16 with the torch backend needs device cuda"):
        create_semantic_backend("torch", "cpu", "fp16", build)
    with pytest.raises(BackendError, match="int8 needs"):
        create_semantic_backend("torch", "cpu", "int8", build)
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA GPU"):
            create_semantic_backend("torch", "cuda", "fp32", build)


def test_segmenter_returns_maps_at_each_frames_own_resolution() -> None:
    seg = SemanticSegmenter.from_config(_small())
    rng = np.random.default_rng(1)
    frames = [
        DecodedImage(rng.integers(0, 256, (48, 97, 3), np.uint8), ColorOrder.RGB),
        DecodedImage(rng.integers(0, 256, (200, 150), np.uint8), ColorOrder.MONO),
    ]
    results = seg.segment(frames, with_confidence=True)
    assert [r.class_map.shape for r in results] == [(48, 97), (200, 150)]
    assert all(r.confidence is not None and r.confidence.shape == r.class_map.shape for r in results)
    alone = seg.segment(frames[1:])[0]
    assert np.array_equal(alone.class_map, results[1].class_map)
    assert seg.overlay(frames[0], results[0], 0.5).shape == (48, 97, 3)
    assert seg.segment([]) == []


def test_a_mono16_camera_is_segmented_as_rosbags_image_reads_it_as_mono8_even_beside_another_camera(
    semantic_checkpoint: Path,
) -> None:
    """An IR or 16-bit machine-vision camera: the models take 8 bits, as rosbags-image (and
    cv_bridge) give them; one such frame in a batch must not spoil the other camera's."""
    from rosbags.image import image_to_cvimage
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS2_HUMBLE).types
    wide = cv2.resize(np.random.default_rng(2).integers(0, 65536, (9, 13), np.uint16), (130, 90))
    header = types["std_msgs/msg/Header"](types["builtin_interfaces/msg/Time"](0, 0), "ir")
    data = np.frombuffer(wide.astype(">u2").tobytes(), np.uint8)  # big-endian, as some drivers send
    msg = types["sensor_msgs/msg/Image"](header, 90, 130, "mono16", 1, 260, data)
    theirs = DecodedImage(np.asarray(image_to_cvimage(msg, "mono8")), ColorOrder.MONO)
    rgb = DecodedImage(np.random.default_rng(3).integers(0, 256, (48, 97, 3), np.uint8), ColorOrder.RGB)
    seg = SemanticSegmenter.from_config(_small(checkpoint=str(semantic_checkpoint)))
    rgb_alone = seg.segment([rgb])[0].class_map
    mono16, beside = seg.segment([decode_image(msg), rgb])
    assert np.array_equal(mono16.class_map, seg.segment([theirs])[0].class_map)
    assert np.array_equal(beside.class_map, rgb_alone)
    assert len(np.unique(mono16.class_map)) > 1  # a meaningful comparison


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_class_maps_match_cpu_within_tolerance() -> None:
    cpu = SemanticSegmenter.from_config(_small())
    gpu = SemanticSegmenter.from_config(_small(device="cuda", precision="fp16"))
    frame = DecodedImage(np.random.default_rng(2).integers(0, 256, (64, 128, 3), np.uint8), ColorOrder.RGB)
    a, b = cpu.segment([frame])[0].class_map, gpu.segment([frame])[0].class_map
    assert (a == b).mean() > 0.99
