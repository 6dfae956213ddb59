"""Shared fixtures. ROS tests run in their own DDS domain, on localhost only, and leave no
process behind (every node started here is stopped and reaped in teardown)."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import torch

from seg_perception.config.records import node_defaults
from seg_perception.models.semantic import build_semantic_model

# Isolate from any other ROS graph on the machine before rclpy is imported anywhere (pytest
# loads this file before any test module; nothing imported above loads rclpy).
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(30, 99))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# No Fast DDS profile here: test cameras and listeners run with the middleware's defaults,
# like a stock camera driver and RViz. Node processes pick their own (ros/transport.py).
for _var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
    os.environ.pop(_var, None)
# Tests stop commands and nodes with SIGINT, as Ctrl-C does. Started in the background
# (`make test &`, nohup), this process inherits SIGINT ignored and so would every child, which
# then never sees it; a handler here is reset to the default in each child, which Python turns
# into KeyboardInterrupt as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SMALL = {"input_height": 128, "input_width": 256, "backend": "torch", "device": "cpu"}


def spatially_varied_model(seed: int) -> torch.nn.Module:
    """Untrained DeepLab whose class map is not constant, so equality checks mean something.

    A freshly initialised DeepLab predicts one class everywhere: the mean feature dominates
    the logits. Calibrating BatchNorm on a few smooth random batches and centring the last
    layer's bias on the mean feature makes the argmax vary across the image.
    """
    model, _ = build_semantic_model("deeplabv3_mobilenet_v3_large", 19, None, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    batches = [
        torch.nn.functional.interpolate(torch.rand(4, 3, 16, 32, generator=gen), size=(128, 256), mode="bilinear")
        for _ in range(3)
    ]
    feats: list[torch.Tensor] = []
    with torch.no_grad():
        model.train()
        for x in batches:
            model(x)
        model.eval()
        hook = model.classifier[4].register_forward_hook(lambda m, inp, out: feats.append(inp[0].mean((0, 2, 3))))
        for x in batches:
            model(x)
        hook.remove()
        weight = model.classifier[4].weight[:, :, 0, 0]
        model.classifier[4].bias.copy_(-(weight @ torch.stack(feats).mean(0)))
    return model


@pytest.fixture(scope="session")
def semantic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-layout DeepLabV3-MobileNetV3 checkpoint with non-default random weights."""
    model = spatially_varied_model(seed=1234)
    path = tmp_path_factory.mktemp("ckpt") / "deeplab_mnv3.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def small_semantic_params(semantic_checkpoint: Path) -> dict:
    """Node defaults with a small input size and the test checkpoint (fast on 2 CPU cores)."""
    params = node_defaults("semantic")
    params.update(SMALL, checkpoint=str(semantic_checkpoint))
    return params
