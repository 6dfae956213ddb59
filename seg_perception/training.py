"""Training the default models on generated road scenes (``seg-perception train``).

Reproducible from the seed: the data stream is ``generate_frame(seed, i)`` for a fixed
sequence of indices, model initialisation and augmentation draw from seeded generators, and
the run can stop and resume from ``last.pth`` (model, optimiser, schedule, iteration) without
changing the result's recipe. Runs on the CPU (2 cores: see the model card for time) or CUDA.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .evaluation import confusion_matrix, summarize
from .labels import load_label_set
from .models import SemanticHead, build_semantic_model
from .synthetic import CONDITIONS, generate_frame

EVAL_SEED_OFFSET = 100_000  # evaluation frames come from a seed the training never sees


@dataclass(frozen=True)
class SemanticTrainConfig:
    out: str
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


class SyntheticSemanticData(Dataset):
    """Frame i of the training stream: uint8 (H, W, 3) RGB and int64 (H, W) train ids."""

    def __init__(self, seed: int, height: int, width: int, length: int) -> None:
        self.seed, self.height, self.width, self.length = seed, height, width, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frame = generate_frame(self.seed, index, self.width, self.height)
        image, target = frame.image, frame.train_ids
        if np.random.default_rng([self.seed, index, 99]).random() < 0.5:  # seeded horizontal flip
            image, target = image[:, ::-1], target[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(target.astype(np.int64))


def _progress(it: int, total: int, loss: float, started: float) -> None:
    done = it / total
    elapsed = time.monotonic() - started
    eta = elapsed / max(done, 1e-9) - elapsed
    bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
    sys.stderr.write(f"\r[{bar}] {it}/{total} loss {loss:.3f} elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min ")
    sys.stderr.flush()


def train_semantic(cfg: SemanticTrainConfig, resume: bool = True) -> Path:
    """Train, checkpointing to ``<out>/last.pth``; returns the path of ``<out>/final.pth``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    labels = load_label_set(cfg.labels)
    model, _ = build_semantic_model(cfg.model, labels.num_classes, None, seed=cfg.seed)
    head = SemanticHead(model).to(cfg.device).train()
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.iterations, pct_start=0.1)
    start_it, elapsed_before = 0, 0.0
    last = out / "last.pth"
    if resume and last.is_file():
        state = torch.load(last, map_location=cfg.device, weights_only=False)
        if state["config"] != asdict(cfg):
            raise SystemExit(f"{last} was written with another configuration; use a new --out or --no-resume")
        head.model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_it, elapsed_before = state["iteration"], state["elapsed_s"]
        print(f"resuming from {last} at iteration {start_it}")
    data = SyntheticSemanticData(cfg.seed, cfg.height, cfg.width, cfg.iterations * cfg.batch_size)
    # The sampler walks the fixed index sequence from where the run stopped.
    indices = list(range(start_it * cfg.batch_size, cfg.iterations * cfg.batch_size))
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0)
    started = time.monotonic() - elapsed_before
    it = start_it
    for frames, targets in loader:
        frames, targets = frames.to(cfg.device), targets.to(cfg.device)
        loss = torch.nn.functional.cross_entropy(head.logits(frames), targets, ignore_index=labels.ignore_train_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        it += 1
        _progress(it, cfg.iterations, float(loss), started)
        if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
            torch.save({"model": head.model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "iteration": it, "elapsed_s": time.monotonic() - started, "config": asdict(cfg)}, last)
    sys.stderr.write("\n")
    train_s = time.monotonic() - started
    head.eval()
    metrics = evaluate_semantic_head(head, cfg, labels)
    final = out / "final.pth"
    meta = {
        "arch": cfg.model, "labels": labels.name, "input_size": [cfg.height, cfg.width],
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "train_config": asdict(cfg), "train_time_s": round(train_s, 1), "metrics": metrics,
        "torch": torch.__version__,
    }
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in head.model.state_dict().items()}
    torch.save({"model": half, "meta": meta}, final)
    (out / "metrics.json").write_text(json.dumps(meta, indent=2))
    print(f"trained {cfg.iterations} iterations in {train_s / 60:.1f} min; mIoU {metrics['all']['mIoU'] * 100:.1f} %")
    return final


@torch.inference_mode()
def evaluate_semantic_head(head: SemanticHead, cfg: SemanticTrainConfig, labels: Any) -> dict[str, Any]:
    """mIoU per condition on held-out generated frames (a seed training never used)."""
    per_condition: dict[str, Any] = {}
    total = np.zeros((labels.num_classes, labels.num_classes), np.int64)
    seed = cfg.seed + EVAL_SEED_OFFSET
    for c, condition in enumerate(CONDITIONS):
        conf = np.zeros_like(total)
        for i in range(cfg.eval_frames_per_condition):
            frame = generate_frame(seed, c * 1000 + i, cfg.width, cfg.height, condition)
            x = torch.from_numpy(frame.image)[None].to(cfg.device)
            pred = head(x)[0][0].cpu().numpy()
            conf += confusion_matrix(pred, frame.train_ids, labels.num_classes)
        total += conf
        per_condition[condition] = {k: v for k, v in summarize(conf, labels.class_names).items() if k != "iou"}
    return {"all": summarize(total, labels.class_names), "per_condition": per_condition,
            "frames": cfg.eval_frames_per_condition * len(CONDITIONS)}
