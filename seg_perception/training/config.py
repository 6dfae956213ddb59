"""One training run's settings (the ``seg-perception train`` options), recorded in the model
card of the weights it produces."""

from __future__ import annotations

from dataclasses import dataclass

EVAL_SEED_OFFSET = 100_000  # evaluation frames come from a seed the training never sees


@dataclass(frozen=True)
class TrainConfig:
    out: str
    task: str = "semantic"  # semantic | instance
    model: str = "deeplabv3_mobilenet_v3_large"
    labels: str = "cityscapes"
    seed: int = 0
    iterations: int = 600
    batch_size: int = 4
    height: int = 256
    width: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    checkpoint_every: int = 50
    eval_frames_per_condition: int = 6
    device: str = "cpu"
    workers: int = 1
    init: str = ""  # start from these weights (a card or state dict) instead of a seeded init
    # semantic: "enet" weighs each class by 1 / ln(1.02 + its pixel share in the stream) (ENet,
    # Paszke et al. 2016), so poles, signs and two-wheelers are not drowned by road and sky
    class_weights: str = "none"
    # instance: start the backbone from a semantic checkpoint of the same MobileNetV3 (ours was
    # trained on the same scenes, the only "pretraining" available without downloads)
    backbone_init: str = ""
    # instance: RPN proposals kept per image and RoIs sampled per image while training
    # (torchvision: 2000 and 512; fewer make a CPU iteration about twice as fast)
    rpn_train_proposals: int = 2000
    roi_samples: int = 512
    threads: int = 0  # torch intra-op threads (0: torch's default)
