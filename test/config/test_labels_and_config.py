"""Label sets and configuration records: parsed once, validated with readable errors."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.config.records import NodeIOConfig, SemanticModelConfig, load_param_file, node_defaults
from seg_perception.errors import ConfigError
from seg_perception.labels import load_label_set


def test_default_label_set_is_the_19_cityscapes_train_classes() -> None:
    labels = load_label_set()
    assert labels.num_classes == 19
    assert labels.class_names[0] == "road" and labels.class_names[-1] == "bicycle"
    assert [c.name for c in labels.thing_classes] == [
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ]
    assert tuple(labels.palette()[0]) == (128, 64, 128)  # road purple
    assert tuple(labels.palette()[255]) == (0, 0, 0)


def test_label_set_maps_train_ids_to_label_ids_and_back() -> None:
    labels = load_label_set("cityscapes")
    to_label, to_train = labels.train_to_label_id(), labels.label_to_train_id()
    assert to_label[13] == 26  # car
    assert to_train[26] == 13
    assert to_train[9] == 255  # parking is not trained
    ids = np.arange(19, dtype=np.uint8)
    assert np.array_equal(to_train[to_label[ids]], ids)


def test_label_set_raises_on_unknown_name() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_label_set("mapillary_v9")


def test_label_set_raises_on_train_id_gap(tmp_path) -> None:
    path = tmp_path / "gappy.yaml"
    path.write_text(
        "name: gappy\nlabels:\n  - [a, 1, 0, x, false, false, [1, 2, 3]]\n  - [b, 2, 2, x, false, false, [1, 2, 3]]\n"
    )
    with pytest.raises(ConfigError, match="without gaps"):
        load_label_set(path)


def test_semantic_defaults_parse_into_records() -> None:
    params = node_defaults("semantic")
    model = SemanticModelConfig.from_params(params)
    io = NodeIOConfig.from_params(params)
    assert model.model == "deeplabv3_mobilenet_v3_large"
    assert model.checkpoint.endswith("engines/deeplabv3_mobilenet_v3_large_synth.pth")  # resolved, exists
    assert (model.input_height, model.input_width) == (256, 512)
    assert io.input_reliability == "auto" and io.output_reliability == "reliable"  # auto: follow the camera


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"backend": "openvino"}, "backend: 'openvino' is not one of"),
        ({"device": "tpu"}, "device"),
        ({"precision": "int4"}, "precision"),
        ({"input_width": 1000}, "multiples of 16"),
        ({"input_height": 0}, "positive integer"),
        ({"model": "deeplabv3_resnet50", "input_width": 1020}, "multiples of 8"),
        ({"checkpoint": "/does/not/exist.pth"}, "file not found"),
        ({"model": "segformer"}, "unknown semantic model"),
    ],
)
def test_semantic_config_rejects_bad_values_with_a_readable_message(override, match) -> None:
    params = {**node_defaults("semantic"), **override}
    with pytest.raises(ConfigError, match=match):
        SemanticModelConfig.from_params(params)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"input_reliability": "sometimes"}, "input_reliability"),
        ({"output_depth": -1}, "output_depth"),
        ({"overlay_alpha": 1.5}, "overlay_alpha"),
        ({"image_topic": ""}, "image_topic"),
        ({"diagnostics_period": 0}, "diagnostics_period"),
    ],
)
def test_node_io_config_rejects_bad_values(override, match) -> None:
    with pytest.raises(ConfigError, match=match):
        NodeIOConfig.from_params({**node_defaults("semantic"), **override})


def test_config_reports_missing_parameters() -> None:
    params = node_defaults("semantic")
    del params["precision"]
    with pytest.raises(ConfigError, match="missing parameters: precision"):
        SemanticModelConfig.from_params(params)


def test_param_file_without_ros_parameters_is_rejected(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("node:\n  model: x\n")
    with pytest.raises(ConfigError, match="ros__parameters"):
        load_param_file(path)
