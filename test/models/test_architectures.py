"""The architectures a configuration may name are exactly the ones the models layer can build."""

from __future__ import annotations

import pytest

from seg_perception.config.choices import INSTANCE_MODELS, SEMANTIC_MODELS
from seg_perception.errors import ConfigError
from seg_perception.models.instance import INSTANCE_ARCHITECTURES, build_instance_model
from seg_perception.models.semantic import SEMANTIC_ARCHITECTURES, build_semantic_model


def test_every_configurable_architecture_has_a_builder_and_no_builder_is_unreachable() -> None:
    assert set(SEMANTIC_ARCHITECTURES) == set(SEMANTIC_MODELS)
    assert set(INSTANCE_ARCHITECTURES) == set(INSTANCE_MODELS)


def test_an_unknown_architecture_is_one_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown semantic model 'deeplabv9'; expected one of \['deeplabv3"):
        build_semantic_model("deeplabv9", 19, None)
    with pytest.raises(ConfigError, match=r"unknown instance model 'maskrcnn_v9'; expected one of \['maskrcnn"):
        build_instance_model("maskrcnn_v9", 9)
