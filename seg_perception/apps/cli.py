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

from seg_perception.errors import SegPerceptionError


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
    return node_params(args, "semantic")


def node_params(args: argparse.Namespace, node: str) -> dict[str, Any]:
    """``config/<node>.yaml`` with the --config file and -p overrides applied."""
    from seg_perception.config.records import load_param_file, node_defaults

    params = node_defaults(node)
    if getattr(args, "config", None):
        params.update(load_param_file(args.config))
    params.update(_overrides(getattr(args, "param", []) or []))
    return params


def cmd_segment(args: argparse.Namespace) -> int:
    """Class maps of image files in the Cityscapes convention (label ids), so `eval` reads them."""
    import cv2
    import numpy as np

    from seg_perception.config.records import SemanticModelConfig
    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.pipeline.semantic import SemanticSegmenter

    segmenter = SemanticSegmenter.from_config(SemanticModelConfig.from_params(semantic_params(args)))
    to_label_id = segmenter.labels.train_to_label_id()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = [Path(p) for p in args.images]
    images = [f for p in images for f in (sorted(p.rglob("*.png")) + sorted(p.rglob("*.jpg")) if p.is_dir() else [p])]
    for path in images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SegPerceptionError(f"cannot read image {path}")
        image = DecodedImage(bgr, ColorOrder.BGR)
        result = segmenter.segment([image])[0]
        stem = path.stem.removesuffix("_leftImg8bit")
        cv2.imwrite(str(out / f"{stem}_classes.png"), to_label_id[result.class_map])
        overlay = segmenter.overlay(image, result, args.alpha)
        cv2.imwrite(str(out / f"{stem}_overlay.png"), np.ascontiguousarray(overlay[:, :, ::-1]))
    print(f"segmented {len(images)} images: <stem>_classes.png (Cityscapes label ids) and _overlay.png in {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from seg_perception.apps.bench import run_bench
    from seg_perception.config.records import node_defaults

    instance = None
    if "instance" in args.models:
        instance = {**node_defaults("instance"), **_overrides(args.instance_param or [])}
    run_bench(
        semantic_params(args),
        args.width,
        args.height,
        args.iterations,
        args.warmup,
        args.json,
        backends=args.backends if "semantic" in args.models else (),
        compare=args.compare,
        instance_params=instance,
        int8_onnx=args.int8_onnx,
        confidence=args.confidence,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from seg_perception.ros.tools.demo import run_demo

    if not args.rate > 0:
        raise SegPerceptionError(f"--rate must be > 0, got {args.rate}")
    return run_demo(Path(args.out), args.frames, args.seed, node_params(args, "perception"), args.rate)


def cmd_replay(args: argparse.Namespace) -> int:
    """Every frame of a bag through the core; outputs to a new bag, report beside it."""
    import signal

    from seg_perception.apps.replay import ReplayOptions, replay_bag, report_paths
    from seg_perception.pipeline.perception import parse_models

    options = ReplayOptions(
        topics=tuple(args.topic or ()),
        models=parse_models(args.models),
        overlays=args.overlays,
        confidence=args.confidence,
        copy_input=args.copy_input,
        storage=args.storage or "",
        limit=args.limit,
        progress=not args.no_progress,
    )
    # `kill` as well as Ctrl-C closes the output bag properly (KeyboardInterrupt unwinds the writer).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = replay_bag(args.bag, args.out, node_params(args, "perception"), options, args.report)
    data = report.to_dict()
    lat = data["latency_ms"]
    print(
        f"replayed {report.frames} frames ({report.bad_frames} bad, skipped) from {', '.join(report.topics)} "
        f"into {report.output_bag}: {data['frames_per_s'] or 0:.2f} frames/s, latency p50 {lat['p50']:.0f} ms "
        f"p99 {lat['p99']:.0f} ms"
    )
    for note in report.notes:
        print(f"NOTE: {note}")
    if report.metrics and "semantic" in report.metrics:
        sem = report.metrics["semantic"]
        print(
            f"metrics vs the bag's ground truth: mIoU {100 * sem['mIoU']:.1f} %, pixel accuracy "
            f"{100 * sem['pixel_accuracy']:.1f} %"
            + (f", PQ {100 * report.metrics['panoptic']['All']['pq']:.1f} %" if "panoptic" in report.metrics else "")
        )
    print("report: {} and {}".format(*report_paths(args.out, args.report)))
    if report.stopped.startswith("bag fault"):
        print(
            f"seg-perception: error: {report.stopped} ({report.frames} frames before it are in the output)",
            file=sys.stderr,
        )
        return 2
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from seg_perception.synthetic.scenes import CONDITIONS, generate_drive, generate_frame, write_cityscapes

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
        from seg_perception.io.bags import write_drive_bag

        bag = write_drive_bag(args.bag, frames(), fps=args.fps, storage=args.storage, compressed=args.compressed)
        print(f"wrote drive bag {bag} ({args.storage}, {args.fps:g} Hz)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from seg_perception.metrics.run import main_eval

    return main_eval(args.pred, args.gt, args.json)


def cmd_train(args: argparse.Namespace) -> int:
    from seg_perception.training.loop import TrainConfig, train

    model = (
        args.arch
        or {"semantic": "deeplabv3_mobilenet_v3_large", "instance": "maskrcnn_mobilenet_v3_large_fpn"}[args.model]
    )
    cfg = TrainConfig(
        out=args.out or f"out/train/{args.model}",
        task=args.model,
        model=model,
        seed=args.seed,
        iterations=args.iterations,
        batch_size=args.batch_size,
        height=args.height,
        width=args.width,
        lr=args.lr,
        device=args.device,
        init=args.init or "",
        class_weights=args.class_weights,
        backbone_init=args.backbone_init or "",
        rpn_train_proposals=args.rpn_train_proposals,
        roi_samples=args.roi_samples,
        threads=args.threads,
    )
    train(cfg, resume=not args.no_resume, stop_after=args.stop_after, finish_at_stop=args.stop_after is not None)
    return 0


def _engines_defaults(args: argparse.Namespace):  # noqa: ANN202
    """(config, precision, onnx path, engine path) from the model's params and the flags. For
    ``--model instance`` the paths are dicts part -> path (the three split graphs)."""
    from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig, load_param_file, node_defaults
    from seg_perception.export.engine_build import artifact_paths

    if getattr(args, "model", "semantic") == "instance":
        from seg_perception.export.instance import instance_artifact_paths

        params = node_defaults("instance")
        if getattr(args, "config", None):
            params.update(load_param_file(args.config))
        params.update(_overrides(getattr(args, "param", []) or []))
        config = InstanceModelConfig.from_params(params)
        precision = args.precision or config.precision
        size = (config.input_height, config.input_width)
        # --engines-dir, else the config's engines_dir (-p / --config): where the nodes look
        paths = instance_artifact_paths(args.engines_dir or config.engines_dir, config.model, size, precision)
        if getattr(args, "onnx", None) or getattr(args, "engine", None) or getattr(args, "out", None):
            raise SegPerceptionError(
                "--model instance writes three files: use --engines-dir, not --out/--onnx/--engine"
            )
        return config, precision, {k: v[0] for k, v in paths.items()}, {k: v[1] for k, v in paths.items()}
    config = SemanticModelConfig.from_params(semantic_params(args))
    precision = args.precision or config.precision
    onnx_path, engine_path = artifact_paths(
        args.engines_dir or config.engines_dir, config.model, (config.input_height, config.input_width), precision
    )
    return (
        config,
        precision,
        Path(getattr(args, "onnx", None) or onnx_path),
        Path(getattr(args, "engine", None) or engine_path),
    )


def _calibration(args: argparse.Namespace, size: tuple[int, int]):  # noqa: ANN202 - numpy array or None
    from seg_perception.export.onnx import bag_calibration_frames, load_calibration_frames

    if args.calib and args.calib_bag:
        raise SegPerceptionError("give --calib or --calib-bag, not both")
    if args.calib_bag:
        return bag_calibration_frames(args.calib_bag, size, args.calib_limit, args.calib_topic)
    return load_calibration_frames(args.calib, size, args.calib_limit) if args.calib else None


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from seg_perception.export.accuracy import instance_accuracy_gate, semantic_accuracy_gate
    from seg_perception.export.onnx import describe, export_semantic_onnx, read_onnx_metadata

    config, precision, onnx_path, _ = _engines_defaults(args)
    size = (config.input_height, config.input_width)
    calib = _calibration(args, size)
    started = time.perf_counter()
    if args.model == "instance":
        from seg_perception.export.instance import export_instance_onnx
        from seg_perception.pipeline.instance import InstanceSegmenter

        if config.coco_mapping:
            from seg_perception.models.instance import load_coco_mapping

            coco = load_coco_mapping(config.coco_mapping)
        else:
            coco = None
        segmenter = InstanceSegmenter.build(
            config.model,
            config.labels,
            config.checkpoint or None,
            size,
            coco_mapping=coco,
            score_threshold=config.score_threshold,
            mask_threshold=config.mask_threshold,
            max_instances=config.max_instances,
        )
        paths = export_instance_onnx(
            segmenter.model,
            onnx_path,
            size,
            precision,
            calib,
            arch=config.model,
            max_batch=args.max_batch,
            int8_high_precision=args.int8_high_precision,
        )
        meta = read_onnx_metadata(paths["backbone"])
        print(
            f"exported {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - started:.1f} s: "
            f"{meta['check_detections']} torch detections on {meta['check_frames']} scenes, "
            f"{float(meta['check_matched_fraction']):.1%} matched (gate {meta['check_gate']})"
        )
        if args.accuracy_frames > 0:
            print(
                instance_accuracy_gate(segmenter, paths, precision, frames=args.accuracy_frames, max_drop=args.max_drop)
            )
        return 0
    from seg_perception.labels import load_label_set
    from seg_perception.models.semantic import build_semantic_model

    out = Path(args.out) if args.out else onnx_path
    model, _ = build_semantic_model(config.model, load_label_set(config.labels).num_classes, config.checkpoint or None)
    path = export_semantic_onnx(
        model, out, size, precision, calib, max_batch=args.max_batch, int8_high_precision=args.int8_high_precision
    )
    print(f"{path}: {describe(read_onnx_metadata(path))}, {time.perf_counter() - started:.1f} s")
    if args.accuracy_frames > 0:
        print(
            semantic_accuracy_gate(
                model, path, precision, size, config.labels, frames=args.accuracy_frames, max_drop=args.max_drop
            )
        )
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from seg_perception.export.engine_build import build_engine
    from seg_perception.inference.tensorrt_backend import engine_summary

    _, precision, onnx_path, engine_path = _engines_defaults(args)
    if args.model == "instance":
        from seg_perception.export.instance import build_instance_engines

        build_instance_engines(
            onnx_path,
            engine_path,
            precision,
            opt_batch=args.opt_batch,
            max_batch=args.max_batch,
            max_rois=args.max_rois,
            max_detections=args.max_detections,
            workspace_mb=args.workspace_mb,
            timing_cache=args.timing_cache,
            rtx_targets=args.rtx_target or (),
            library=args.library,
        )
        for path in engine_path.values():
            print(engine_summary(path))
        return 0
    build_engine(
        onnx_path,
        engine_path,
        precision,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
        workspace_mb=args.workspace_mb,
        timing_cache=args.timing_cache,
        rtx_targets=args.rtx_target or (),
        library=args.library,
    )
    print(engine_summary(engine_path))
    return 0


def add_engine_commands(sub) -> None:  # noqa: ANN001 - argparse subparsers; call from build_parser()
    p = sub.add_parser(
        "export", help="export a model to ONNX (fp32 | fp16 AutoCast | int8 Q/DQ), verified in ONNX Runtime"
    )
    p.add_argument(
        "--model",
        choices=("semantic", "instance"),
        default="semantic",
        help="instance: the Mask R-CNN split graphs <model>_<H>x<W>_<precision>.{backbone,box_head,mask_head}.onnx",
    )
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: the config's precision")
    p.add_argument("--out", help="ONNX path (semantic; default: <engines-dir>/<model>_<H>x<W>_<precision>.onnx)")
    p.add_argument("--engines-dir", help="default: the config's engines_dir (engines/ of the package)")
    p.add_argument(
        "--calib", help="calibration frames: .npy uint8 (N,H,W,3) RGB or a folder of png/jpg (int8: required)"
    )
    p.add_argument("--calib-bag", help="calibration frames from a rosbag2 (sqlite3/mcap) camera topic")
    p.add_argument("--calib-topic", help="camera topic in --calib-bag (default: its only Image/CompressedImage topic)")
    p.add_argument("--calib-limit", type=int, default=256, help="use at most this many calibration frames")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument(
        "--int8-high-precision",
        choices=("fp16", "fp32"),
        default="fp16",
        help="dtype between int8 Q/DQ pairs: fp16 for TensorRT (default), fp32 for ONNX Runtime CPU",
    )
    p.add_argument(
        "--accuracy-frames",
        type=int,
        default=6,
        help="held-out generated scenes for the accuracy gate (0: skip the gate)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        help="refuse the export past this drop vs torch fp32, in mIoU (semantic) or mask AP50 (instance) "
        "points (default: 1.0 for fp32/fp16, 2.0 for int8)",
    )
    _add_model_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build-engine", help="build TensorRT engine(s) (+ JSON sidecar) from an exported ONNX")
    p.add_argument(
        "--model", choices=("semantic", "instance"), default="semantic", help="instance: build the three split graphs"
    )
    p.add_argument(
        "--precision", choices=("fp32", "fp16", "int8"), help="precision of the ONNX graph (default: config)"
    )
    p.add_argument("--onnx", help="default: <engines-dir>/<model>_<H>x<W>_<precision>.onnx")
    p.add_argument("--engine", help="default: the ONNX path with .engine")
    p.add_argument("--engines-dir", help="default: the config's engines_dir (engines/ of the package)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=4)
    p.add_argument(
        "--max-rois", type=int, help="instance box head profile max (default: RPN post-NMS count x max batch)"
    )
    p.add_argument(
        "--max-detections", type=int, help="instance mask head profile max (default: detections per image x max batch)"
    )
    p.add_argument("--workspace-mb", type=int, default=2048)
    p.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated (TensorRT-RTX has none)")
    p.add_argument(
        "--rtx-target", action="append", metavar="CC", help="TensorRT-RTX compute capability, e.g. 8.6 (repeatable)"
    )
    p.add_argument(
        "--library", choices=("tensorrt", "tensorrt_rtx"), help="default: tensorrt if importable, else tensorrt_rtx"
    )
    _add_model_options(p)
    p.set_defaults(func=cmd_build_engine)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="parameter file (ROS format) overriding the model's config/semantic.yaml or config/instance.yaml",
    )
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seg-perception", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="semantic segmentation of image files or folders (offline core)")
    p.add_argument("images", nargs="+", help="image files, or folders searched for *.png / *.jpg")
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
    p.add_argument(
        "--models",
        nargs="+",
        choices=("semantic", "instance"),
        default=["semantic"],
        help="cores to measure (instance: config/instance.yaml, torch)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        choices=("torch", "onnxruntime", "onnxruntime-int8"),
        default=["torch", "onnxruntime", "onnxruntime-int8"],
        help="semantic backends (torch runs on CUDA where -p device=cuda, or auto, finds a GPU); "
        "int8 is skipped without an int8 ONNX",
    )
    p.add_argument("--int8-onnx", help="int8 ONNX of the same weights (default: the engines_dir artifact)")
    p.add_argument("--compare", action="store_true", help="also run the naive baseline and print the ratios")
    p.add_argument("--confidence", action="store_true", help="also compute and encode the confidence map")
    p.add_argument("--instance-param", action="append", metavar="KEY=VALUE", help="override an instance parameter")
    _add_model_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("replay", help="offline: every frame of a bag through the models into a new bag + report")
    p.add_argument("bag", help="input rosbag2 (sqlite3 or mcap) folder")
    p.add_argument("--out", required=True, help="output bag folder (must not exist)")
    p.add_argument("--models", default="semantic,instance", help="semantic, instance or both (default; + panoptic)")
    p.add_argument(
        "--topic",
        action="append",
        help="camera topic (Image or CompressedImage); repeat for several "
        "cameras; default: the bag's only camera topic",
    )
    p.add_argument("--overlays", action="store_true", help="also write semantic/instance/panoptic overlays (rgb8)")
    p.add_argument("--confidence", action="store_true", help="also write semantic/confidence")
    p.add_argument("--copy-input", action="store_true", help="also copy the camera topics into the output bag")
    p.add_argument("--storage", choices=["sqlite3", "mcap"], help="output storage (default: the input's)")
    p.add_argument("--limit", type=int, default=0, help="stop after this many frames (0: all)")
    p.add_argument("--report", help="report path without suffix (default: <out>.report.json/.md)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", help="parameter file (ROS format) overriding config/perception.yaml")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="override one parameter, e.g. -p semantic.backend=onnxruntime",
    )
    p.set_defaults(func=cmd_replay)

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
    p.add_argument("--arch", help="architecture (default: the light one of the task)")
    p.add_argument("--out", help="default out/train/<model>")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--init", help="start from this checkpoint (fine-tuning / a second stage)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--class-weights",
        choices=["none", "enet"],
        default="none",
        help="semantic: weigh rare classes up (enet: 1 / ln(1.02 + pixel share))",
    )
    p.add_argument("--backbone-init", help="instance: start the backbone from this semantic checkpoint")
    p.add_argument("--rpn-train-proposals", type=int, default=2000, help="instance: proposals kept per image")
    p.add_argument("--roi-samples", type=int, default=512, help="instance: RoIs sampled per image")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--stop-after",
        type=int,
        help="end the run after this many iterations (of --iterations' "
        "schedule): checkpoint, evaluate, write OUT/final.pth",
    )
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pth exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="Cityscapes/COCO metrics of prediction files (equal to the official tools)")
    p.add_argument(
        "--pred",
        required=True,
        help="folder with <stem>_classes.png, _instances.png/.json, _panoptic.png; "
        "or a bag with <camera>/semantic/class_map, instance/..., panoptic/...",
    )
    p.add_argument(
        "--gt",
        required=True,
        help="Cityscapes-layout folder with gtFine/.../*_gtFine_labelIds.png; or a "
        "bag with <camera>/gt/label_ids, gt/instance_ids (gt/condition)",
    )
    p.add_argument("--json", help="also write the results here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "demo",
        help="synthetic drive bag -> bag_player -> perception_node -> bag_recorder over DDS "
        "-> overlay video, PNGs, metrics",
    )
    p.add_argument("--out", default="out/demo")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--rate", type=float, default=0.2, help="playback rate (fraction of real time) the CPU keeps up with"
    )
    p.add_argument("--config", help="parameter file (ROS format) overriding config/perception.yaml")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")
    p.set_defaults(func=cmd_demo)

    add_engine_commands(sub)
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
