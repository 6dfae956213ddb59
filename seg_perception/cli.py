"""`seg-perception` command line: one error boundary, one subcommand per job.

Heavy modules are imported inside each subcommand so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import SegPerceptionError


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`-p key=value` pairs, values parsed as YAML scalars (so 256 is an int)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SegPerceptionError(f"-p expects key=value, got {pair!r}")
        out[key] = yaml.safe_load(value) if value else ""
    return out


def semantic_params(args: argparse.Namespace) -> dict[str, Any]:
    """Node defaults (or --config file) with -p overrides: what every offline job runs on."""
    from .config import load_param_file, node_defaults

    params = node_defaults("semantic")
    if getattr(args, "config", None):
        params.update(load_param_file(args.config))
    params.update(_overrides(getattr(args, "param", []) or []))
    return params


def cmd_segment(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from .config import SemanticModelConfig
    from .image_conversion import ColorOrder, DecodedImage
    from .pipeline.semantic import SemanticSegmenter

    segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(semantic_params(args)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SegPerceptionError(f"cannot read image {path}")
        image = DecodedImage(bgr, ColorOrder.BGR)
        result = segmenter.segment([image])[0]
        stem = Path(path).stem
        cv2.imwrite(str(out / f"{stem}_classes.png"), result.class_map)
        overlay = segmenter.overlay(image, result, args.alpha)
        cv2.imwrite(str(out / f"{stem}_overlay.png"), np.ascontiguousarray(overlay[:, :, ::-1]))
        print(f"{path}: {out / f'{stem}_classes.png'}, {out / f'{stem}_overlay.png'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_semantic_bench

    run_semantic_bench(semantic_params(args), args.width, args.height, args.iterations, args.warmup, args.json)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .ros.demo import run_demo

    return run_demo(Path(args.out), args.frames, args.seed, semantic_params(args))


def cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import CONDITIONS, generate_drive, generate_frame, write_cityscapes

    if args.frames <= 0:
        raise SegPerceptionError(f"--frames must be positive, got {args.frames}")
    if args.condition and args.condition not in CONDITIONS:
        raise SegPerceptionError(f"--condition must be one of {list(CONDITIONS)}, got {args.condition!r}")

    def frames():  # noqa: ANN202 - generator of SyntheticFrame
        if args.drive or args.bag:
            return generate_drive(args.seed, args.frames, args.width, args.height, args.fps, args.condition)
        return (generate_frame(args.seed, i, args.width, args.height, args.condition) for i in range(args.frames))

    paths = write_cityscapes(args.out, frames(), split=args.split)
    print(f"wrote {len(paths)} frames in the Cityscapes layout under {args.out}")
    if args.bag:
        from .bags import write_drive_bag

        bag = write_drive_bag(args.bag, frames(), fps=args.fps, storage=args.storage, compressed=args.compressed)
        print(f"wrote drive bag {bag} ({args.storage}, {args.fps:g} Hz)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .metrics.run import main_eval

    return main_eval(args.pred, args.gt, args.json)


def cmd_train(args: argparse.Namespace) -> int:
    from .training import SemanticTrainConfig, train_semantic

    if args.model != "semantic":
        raise SegPerceptionError(f"train --model {args.model}: only 'semantic' is implemented so far")
    cfg = SemanticTrainConfig(out=args.out, seed=args.seed, iterations=args.iterations, batch_size=args.batch_size,
                              height=args.height, width=args.width, device=args.device)
    final = train_semantic(cfg, resume=not args.no_resume)
    print(f"checkpoint: {final}")
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="parameter file (ROS format) overriding config/semantic.yaml")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seg-perception", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="semantic segmentation of image files (offline core)")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--alpha", type=float, default=0.5)
    _add_model_options(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("bench", help="latency: model only vs end to end (decode, pre, model, post, encode)")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default="out/bench/semantic.json")
    _add_model_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("synth", help="generate road scenes: Cityscapes layout and/or a drive bag")
    p.add_argument("--out", required=True, help="folder for leftImg8bit/ and gtFine/")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--condition", help="force one condition (default: drawn per frame/drive)")
    p.add_argument("--split", default="val")
    p.add_argument("--drive", action="store_true", help="consecutive frames of one drive (default with --bag)")
    p.add_argument("--bag", help="also write a rosbag2 drive here (camera + ground-truth topics)")
    p.add_argument("--storage", choices=["sqlite3", "mcap"], default="sqlite3")
    p.add_argument("--compressed", choices=["", "jpeg", "png"], default="", help="camera as CompressedImage")
    p.add_argument("--fps", type=float, default=10.0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a default model on generated road scenes")
    p.add_argument("--model", choices=["semantic", "instance"], default="semantic")
    p.add_argument("--out", default="out/train/semantic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pth exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="Cityscapes/COCO metrics of prediction files (equal to the official tools)")
    p.add_argument("--pred", required=True, help="folder with <stem>_classes.png, _instances.png/.json, _panoptic.png")
    p.add_argument("--gt", required=True, help="Cityscapes-layout folder with gtFine/.../*_gtFine_labelIds.png")
    p.add_argument("--json", help="also write the results here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="synthetic drive -> semantic node over DDS -> overlays + metrics")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    _add_model_options(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except SegPerceptionError as err:
        print(f"seg-perception: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seg-perception: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
