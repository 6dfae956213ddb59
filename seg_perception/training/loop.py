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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seg_perception.errors import SegPerceptionError
from seg_perception.evaluation import confusion_matrix, summarize
from seg_perception.labels import LabelSet, load_label_set
from seg_perception.models.semantic import IMAGENET_MEAN, IMAGENET_STD, SemanticHead, build_semantic_model
from seg_perception.synthetic.scenes import CONDITIONS, generate_frame

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


class SyntheticData(Dataset):
    """Frame i of the training stream, horizontally flipped by a seeded coin:
    uint8 (H, W, 3) RGB, (H, W) uint8 train ids, (H, W) uint16 instance ids."""

    def __init__(self, seed: int, height: int, width: int, length: int) -> None:
        self.seed, self.height, self.width, self.length = seed, height, width, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = generate_frame(self.seed, index, self.width, self.height)
        arrays = (frame.image, frame.train_ids, frame.instance_ids)
        if np.random.default_rng([self.seed, index, 99]).random() < 0.5:
            arrays = tuple(a[:, ::-1] for a in arrays)
        return tuple(np.ascontiguousarray(a) for a in arrays)


def instance_targets(instance_ids: np.ndarray, labels: LabelSet, min_area: int = 16) -> dict[str, torch.Tensor]:
    """torchvision detection targets from a Cityscapes instanceIds image. Model classes are
    background + the label set's thing classes in train-id order."""
    class_of = {c.id: i + 1 for i, c in enumerate(labels.thing_classes)}
    boxes, classes, masks = [], [], []
    for value in np.unique(instance_ids[instance_ids >= 1000]):
        cls = class_of.get(int(value) // 1000)
        mask = instance_ids == value
        if cls is None or mask.sum() < min_area:
            continue
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        classes.append(cls)
        masks.append(mask)
    h, w = instance_ids.shape
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(classes, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
    }


def _collate(batch: list) -> list:
    return batch


def _progress(it: int, total: int, loss: float, started: float) -> None:
    done = it / total
    elapsed = time.monotonic() - started
    eta = elapsed / max(done, 1e-9) - elapsed
    bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
    sys.stderr.write(f"\r[{bar}] {it}/{total} loss {loss:.3f} elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min ")
    sys.stderr.flush()


def _train_loop(
    cfg: TrainConfig, model: nn.Module, loss_fn: Callable[[list], torch.Tensor], stop_after: int | None = None
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
        loss.backward()
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

        def loss_fn(batch: list) -> torch.Tensor:
            frames = torch.from_numpy(np.stack([b[0] for b in batch])).to(cfg.device)
            targets = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64)).to(cfg.device)
            return nn.functional.cross_entropy(
                head.logits(frames), targets, weight=weight_t, ignore_index=labels.ignore_train_id
            )

        train_s, stopped = _train_loop(cfg, head.model, loss_fn, stop_after)
        if stopped and not finish_at_stop:
            return None
        metrics = evaluate_semantic_head(head, cfg, labels)
        trained, extra = (
            head.model,
            ({} if weights is None else {"class_weights": dict(zip(labels.class_names, weights))}),
        )
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

        def loss_fn(batch: list) -> torch.Tensor:
            images = [torch.from_numpy(b[0]).permute(2, 0, 1).float().div(255).to(cfg.device) for b in batch]
            targets = [{k: v.to(cfg.device) for k, v in instance_targets(b[2], labels).items()} for b in batch]
            return sum(model(images, targets).values())

        train_s, stopped = _train_loop(cfg, model, loss_fn, stop_after)
        if stopped and not finish_at_stop:
            return None
        metrics = evaluate_instance_model(model, cfg, labels)
        trained, extra = model, {"classes": names}
    else:
        raise SegPerceptionError(f"unknown task {cfg.task!r}; expected semantic or instance")
    meta = {
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


def class_weights(cfg: TrainConfig, labels: LabelSet, frames: int = 64) -> list[float] | None:
    """Per-class loss weights from the pixel shares of the first ``frames`` frames of the
    training stream (deterministic for the seed); None without ``class_weights``."""
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights != "enet":
        raise SegPerceptionError(f"unknown class weighting {cfg.class_weights!r}; expected none or enet")
    data = SyntheticData(cfg.seed, cfg.height, cfg.width, frames)
    counts = np.zeros(labels.num_classes, np.int64)
    for i in range(frames):
        ids = data[i][1]
        counts += np.bincount(ids[ids < labels.num_classes].ravel(), minlength=labels.num_classes)
    share = counts / max(counts.sum(), 1)
    return [round(float(1.0 / np.log(1.02 + p)), 3) for p in share]


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


@torch.inference_mode()
def evaluate_semantic_head(head: SemanticHead, cfg: TrainConfig, labels: LabelSet) -> dict[str, Any]:
    """mIoU per condition on held-out generated frames (a seed training never used)."""
    head.eval()
    per_condition: dict[str, Any] = {}
    total = np.zeros((labels.num_classes, labels.num_classes), np.int64)
    for c, condition in enumerate(CONDITIONS):
        conf = np.zeros_like(total)
        for i in range(cfg.eval_frames_per_condition):
            frame = generate_frame(cfg.seed + EVAL_SEED_OFFSET, c * 1000 + i, cfg.width, cfg.height, condition)
            pred = head(torch.from_numpy(frame.image)[None].to(cfg.device))[0][0].cpu().numpy()
            conf += confusion_matrix(pred, frame.train_ids, labels.num_classes)
        total += conf
        per_condition[condition] = {k: v for k, v in summarize(conf, labels.class_names).items() if k != "iou"}
    return {
        "all": summarize(total, labels.class_names),
        "per_condition": per_condition,
        "frames": cfg.eval_frames_per_condition * len(CONDITIONS),
    }


@torch.inference_mode()
def evaluate_instance_model(model: nn.Module, cfg: TrainConfig, labels: LabelSet) -> dict[str, Any]:
    """Cityscapes instance AP / AP50 (equal to the official tool) per condition, held-out frames."""
    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.metrics.cityscapes import InstanceEvaluator
    from seg_perception.pipeline.instance import InstanceSegmenter

    segmenter = InstanceSegmenter(model, labels, (cfg.height, cfg.width), device=cfg.device, score_threshold=0.3)
    overall, per_condition = InstanceEvaluator(), {}
    for c, condition in enumerate(CONDITIONS):
        evaluator = InstanceEvaluator()
        for i in range(cfg.eval_frames_per_condition):
            frame = generate_frame(cfg.seed + EVAL_SEED_OFFSET, c * 1000 + i, cfg.width, cfg.height, condition)
            result = segmenter.segment([DecodedImage(frame.image, ColorOrder.RGB)])[0]
            scores = [(r.value, r.score) for r in result.instances]
            for ev in (evaluator, overall):
                ev.add(frame.instance_ids, result.instance_map, scores)
        res = evaluator.result()
        per_condition[condition] = {"AP": res["AP"], "AP50": res["AP50"]}
    res = overall.result()
    return {
        "all": {"AP": res["AP"], "AP50": res["AP50"], "classes": res["classes"]},
        "per_condition": per_condition,
        "frames": cfg.eval_frames_per_condition * len(CONDITIONS),
    }


def model_card(meta: dict[str, Any], commands: list[str], stages: list[dict[str, Any]] | None = None) -> str:
    """Markdown model card from a checkpoint's meta: data, commands, time, metrics per condition."""
    metrics = meta["metrics"]
    instance = "mIoU" not in metrics["all"]
    stages = stages or [meta]
    init = (
        "Backbone initialised from the semantic default weights (trained on the same generated scenes); "
        "nothing downloaded, nothing pretrained elsewhere."
        if any(s["train_config"].get("backbone_init") for s in stages)
        else "Nothing downloaded, nothing pretrained."
    )
    lines = [
        f"# {meta['arch']} — seg_perception default weights",
        "",
        f"- Label set: `{meta['labels']}` ("
        + (f"classes {', '.join(meta['classes'][1:])} + background" if instance else "19 train classes")
        + f"); input {meta['input_size'][0]}x{meta['input_size'][1]} (H x W)"
        + ("." if instance else ", ImageNet mean/std normalisation (inside the graph)."),
        "- Data: frames from `seg_perception.synthetic.scenes.generate_frame(seed, i)` (procedural road scenes, all nine "
        f"conditions mixed, random horizontal flips). {init}",
        f"- Stored in fp16 (loaded as fp32); torch {meta['torch']}.",
        "",
        "## How it was made (2-core x86_64 CPU, no GPU)",
        "",
        "```bash",
        *commands,
        "```",
        "",
    ]
    for stage in stages:
        cfg = stage["train_config"]
        extra = []
        if cfg.get("class_weights", "none") != "none":
            extra.append(f"{cfg['class_weights']} class weights")
        its = (
            f"{stage['stopped_at']} iterations of a {cfg['iterations']}-iteration schedule"
            if stage.get("stopped_at")
            else f"{cfg['iterations']} iterations"
        )
        if cfg.get("task") == "instance":
            extra.append(f"{cfg['rpn_train_proposals']} proposals, {cfg['roi_samples']} RoIs per image")
        lines.append(
            f"- seed {cfg['seed']}, {its} x batch {cfg['batch_size']}, AdamW one-cycle max lr "
            f"{cfg['lr']}{''.join(', ' + e for e in extra)}, init {cfg.get('init') or 'seeded random'}"
            f"{', backbone ' + cfg['backbone_init'] if cfg.get('backbone_init') else ''}: "
            f"{stage['train_time_s'] / 60:.1f} min"
        )
    lines += ["", *(_instance_tables(metrics) if instance else _semantic_tables(metrics))]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value * 100:.1f}"  # None / NaN: class never seen


def _condition_table(metrics: dict[str, Any], method: str, columns: dict[str, str]) -> list[str]:
    """Heading and the per-condition table (plus the overall row) of ``columns`` {title: key}."""

    def cells(m: dict[str, Any]) -> str:
        return " | ".join(_pct(m[key]) for key in columns.values())

    overall = " | ".join(f"**{_pct(metrics['all'][key])}**" for key in columns.values())
    return [
        f"## Accuracy on held-out generated frames ({metrics['frames']} frames, seed + {EVAL_SEED_OFFSET}, {method})",
        "",
        f"| condition | {' | '.join(columns)} |",
        "|---|" + "---|" * len(columns),
        *[f"| {c} | {cells(m)} |" for c, m in metrics["per_condition"].items()],
        f"| **all** | {overall} |",
    ]


def _semantic_tables(metrics: dict[str, Any]) -> list[str]:
    return [
        *_condition_table(
            metrics, "confusion-matrix IoU as in cityscapesscripts", {"mIoU %": "mIoU", "pixel acc %": "pixel_accuracy"}
        ),
        "",
        "| class | IoU % |",
        "|---|---|",
        *[f"| {k} | {_pct(v)} |" for k, v in metrics["all"]["iou"].items()],
        "",
        "Limits: trained only on generated scenes at low resolution within a CPU budget; thin and small classes",
        "(poles, signs, lights, riders, two-wheelers) are learned least. It makes every command work",
        "out of the box and segments road, sky, buildings, vegetation and vehicles recognisably; for real",
        "driving, configure a Cityscapes-trained torchvision DeepLabV3 checkpoint.",
    ]


def _instance_tables(metrics: dict[str, Any]) -> list[str]:
    return [
        *_condition_table(
            metrics,
            "mask AP as `evalInstanceLevelSemanticLabeling` computes it, score threshold 0.3",
            {"AP %": "AP", "AP50 %": "AP50"},
        ),
        "",
        "| class | AP % | AP50 % |",
        "|---|---|---|",
        *[f"| {k} | {_pct(v['ap'])} | {_pct(v['ap50'])} |" for k, v in metrics["all"]["classes"].items()],
        "",
        "Limits: trained only on generated scenes at low resolution within a CPU budget; small and rare",
        "instances (distant persons, riders, two-wheelers) are found least. For real driving, configure a",
        "COCO-trained torchvision Mask R-CNN checkpoint with `coco_mapping` (config/instance.yaml).",
    ]
