"""Training the default models on generated road scenes (``seg-perception train``).

Reproducible from the seed: the data stream is ``generate_frame(seed, i)`` for a fixed
sequence of indices, model initialisation and augmentation draw from seeded generators, and
the run can stop and resume from ``last.pth`` (model, optimiser, schedule, iteration) without
changing the recipe. Runs on the CPU (see the model cards for the time on 2 cores) or CUDA.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from seg_perception.errors import SegPerceptionError
from seg_perception.labels import load_label_set
from seg_perception.models.semantic import IMAGENET_MEAN, IMAGENET_STD, SemanticHead, build_semantic_model
from seg_perception.training.card import evaluate_instance_model, evaluate_semantic_head
from seg_perception.training.config import TrainConfig
from seg_perception.training.data import Sample, SyntheticData, _collate, class_weights, instance_targets


def _progress(it: int, total: int, loss: float, started: float) -> None:
    done = it / total
    elapsed = time.monotonic() - started
    eta = elapsed / max(done, 1e-9) - elapsed
    bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
    sys.stderr.write(f"\r[{bar}] {it}/{total} loss {loss:.3f} elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min ")
    sys.stderr.flush()


def _train_loop(
    cfg: TrainConfig, model: nn.Module, loss_fn: Callable[[list[Sample]], torch.Tensor], stop_after: int | None = None
) -> tuple[float, bool]:
    """Optimise ``model`` over the seeded stream with AdamW + one-cycle; checkpoint and resume.
    Returns (training time in seconds, resumed runs included; whether it stopped early at
    ``stop_after`` iterations, checkpointed as an interrupted run would be)."""
    out = Path(cfg.out)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.iterations, pct_start=0.1)
    start_it, elapsed_before = 0, 0.0
    last = out / "last.pth"
    if last.is_file():
        state = torch.load(last, map_location=cfg.device, weights_only=False)
        if state["config"] != asdict(cfg):
            raise SegPerceptionError(f"{last} was written with another configuration; use a new --out or --no-resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_it, elapsed_before = state["iteration"], state["elapsed_s"]
        torch.set_rng_state(state["rng"])  # dropout draws continue where they stopped
        print(f"resuming from {last} at iteration {start_it}")
    if stop_after is not None and start_it >= stop_after:  # already there (e.g. --stop-after run again)
        model.eval()
        return elapsed_before, True
    data = SyntheticData(cfg.seed, cfg.height, cfg.width, cfg.iterations * cfg.batch_size)
    # The sampler walks the fixed index sequence from where the run stopped.
    indices = list(range(start_it * cfg.batch_size, cfg.iterations * cfg.batch_size))
    loader = DataLoader(
        data,
        batch_size=cfg.batch_size,
        sampler=indices,
        num_workers=cfg.workers,
        collate_fn=_collate,
        persistent_workers=cfg.workers > 0,
        # its own generator: creating the iterator must not draw from the global
        # RNG, or a resumed run's dropout draws would shift
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    started = time.monotonic() - elapsed_before
    it = start_it
    model.train()
    for batch in loader:
        loss = loss_fn(batch)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # loss.backward(), typed
        opt.step()
        sched.step()
        it += 1
        _progress(it, cfg.iterations, loss.item(), started)
        if it % cfg.checkpoint_every == 0 or it in (cfg.iterations, stop_after):
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "iteration": it,
                    "elapsed_s": time.monotonic() - started,
                    "config": asdict(cfg),
                    "rng": torch.get_rng_state(),
                },
                last,
            )
        if it == stop_after:
            break
    sys.stderr.write("\n")
    model.eval()
    return time.monotonic() - started, it == stop_after and it < cfg.iterations


def train(
    cfg: TrainConfig, resume: bool = True, stop_after: int | None = None, finish_at_stop: bool = False
) -> Path | None:
    """Train the configured task; writes ``<out>/final.pth`` (fp16 card) and ``metrics.json``.
    With ``stop_after`` it checkpoints after that many iterations and returns None, as an
    interrupted run (resume it later); with ``finish_at_stop`` as well it evaluates and writes
    ``final.pth`` there, for a schedule cut short on purpose (the card records the stop)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        (out / "last.pth").unlink(missing_ok=True)
    labels = load_label_set(cfg.labels)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if cfg.task == "semantic":
        model, _ = build_semantic_model(cfg.model, labels.num_classes, cfg.init or None, seed=cfg.seed)
        head = SemanticHead(model).to(cfg.device)
        weights = class_weights(cfg, labels)
        weight_t = None if weights is None else torch.tensor(weights, dtype=torch.float32, device=cfg.device)

        def loss_fn(batch: list[Sample]) -> torch.Tensor:
            frames = torch.from_numpy(np.stack([b[0] for b in batch])).to(cfg.device)
            targets = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64)).to(cfg.device)
            loss: torch.Tensor = nn.functional.cross_entropy(
                head.logits(frames), targets, weight=weight_t, ignore_index=labels.ignore_train_id
            )
            return loss

        train_s, stopped = _train_loop(cfg, head.model, loss_fn, stop_after)
        if stopped and not finish_at_stop:
            return None
        metrics = evaluate_semantic_head(head, cfg, labels)
        trained: nn.Module = head.model
        extra: dict[str, Any] = {} if weights is None else {"class_weights": dict(zip(labels.class_names, weights))}
    elif cfg.task == "instance":
        from seg_perception.models.instance import build_instance_model, instance_class_names

        names = instance_class_names(labels)
        model, _ = build_instance_model(
            cfg.model,
            len(names),
            cfg.init or None,
            seed=cfg.seed,
            class_names=names,
            min_size=min(cfg.height, cfg.width),
            max_size=max(cfg.height, cfg.width),
            rpn_pre_nms_top_n_train=cfg.rpn_train_proposals,
            rpn_post_nms_top_n_train=cfg.rpn_train_proposals,
            box_batch_size_per_image=cfg.roi_samples,
        )
        if cfg.backbone_init:
            transfer_backbone(model, cfg.backbone_init)
        model.to(cfg.device)

        def loss_fn(batch: list[Sample]) -> torch.Tensor:
            images = [torch.from_numpy(b[0]).permute(2, 0, 1).float().div(255).to(cfg.device) for b in batch]
            targets = [{k: v.to(cfg.device) for k, v in instance_targets(b[2], labels).items()} for b in batch]
            losses: list[torch.Tensor] = list(model(images, targets).values())
            total = losses[0]
            for part in losses[1:]:  # summed in order, as sum() did: training stays bit-for-bit reproducible
                total = total + part
            return total

        train_s, stopped = _train_loop(cfg, model, loss_fn, stop_after)
        if stopped and not finish_at_stop:
            return None
        metrics = evaluate_instance_model(model, cfg, labels)
        trained, extra = model, {"classes": names}  # the model card lists the model's classes
    else:
        raise SegPerceptionError(f"unknown task {cfg.task!r}; expected semantic or instance")
    meta: dict[str, Any] = {
        "arch": cfg.model,
        "labels": labels.name,
        "input_size": [cfg.height, cfg.width],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "train_config": asdict(cfg),
        "train_time_s": round(train_s, 1),
        "metrics": metrics,
        "torch": str(torch.__version__),
        **extra,
        **({"stopped_at": stop_after} if stopped else {}),
    }
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in trained.state_dict().items()}
    final = out / "final.pth"
    torch.save({"model": half, "meta": meta}, final)
    (out / "metrics.json").write_text(json.dumps(meta, indent=2))
    done = stop_after if stopped else cfg.iterations
    print(f"trained {done} of {cfg.iterations} iterations in {train_s / 60:.1f} min; checkpoint {final}")
    return final


def transfer_backbone(model: nn.Module, checkpoint: str | Path) -> int:
    """Copy a semantic DeepLabV3-MobileNetV3 backbone (``backbone.<i>.*``) into a Mask R-CNN
    MobileNetV3-FPN body (``backbone.body.<i>.*``): the same MobileNetV3 blocks, the
    segmentation one merely dilated. Returns the number of tensors copied; refuses a
    checkpoint whose backbone does not fit."""
    from seg_perception.models.semantic import read_checkpoint

    state, _ = read_checkpoint(checkpoint)
    target = model.state_dict()
    copied = {}
    for key, value in state.items():
        if not key.startswith("backbone."):
            continue
        dest = "backbone.body." + key[len("backbone.") :]
        if dest in target and target[dest].shape == value.shape:
            copied[dest] = value.to(target[dest].dtype)
    body = [k for k in target if k.startswith("backbone.body.")]
    if len(copied) != len(body):
        raise SegPerceptionError(
            f"{checkpoint}: {len(copied)} of the {len(body)} backbone tensors fit; "
            "expected a DeepLabV3-MobileNetV3-Large checkpoint"
        )
    model.load_state_dict(copied, strict=False)
    return len(copied)
