"""The subcommands of `seg-perception`: each turns its parsed arguments into library calls and
prints the outcome. Errors propagate to the error boundary of :func:`seg_perception.apps.cli.main`.

Heavy modules are imported inside each command so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seg_perception.errors import SegPerceptionError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from seg_perception.synthetic.frames import SyntheticFrame

# The light architecture of each task: what `train` trains without --arch.
DEFAULT_ARCH = {"semantic": "deeplabv3_mobilenet_v3_large", "instance": "maskrcnn_mobilenet_v3_large_fpn"}


def _params(args: argparse.Namespace, node: str) -> dict[str, Any]:
    """``config/<node>.yaml`` with the command's --config file and -p overrides applied."""
    from seg_perception.config.overrides import node_params

    return node_params(node, getattr(args, "config", None), getattr(args, "param", None) or ())


def cmd_segment(args: argparse.Namespace) -> int:
    """Class maps of image files in the Cityscapes convention (label ids), so `eval` reads them."""
    from seg_perception.apps.images import segment_images
    from seg_perception.config.records import SemanticModelConfig
    from seg_perception.pipeline.factory import semantic_from_config

    segmenter = semantic_from_config(SemanticModelConfig.from_params(_params(args, "semantic")))
    out = Path(args.out)
    if args.format == "cityscapes":
        images = segment_images(segmenter, args.images, out, args.alpha, fmt="cityscapes")
        print(
            f"segmented {len(images)} images: <stem>_pred_labelIds.png (Cityscapes label ids) in {out}, "
            "ready for the official evaluation (CITYSCAPES_RESULTS)"
        )
        return 0
    images = segment_images(segmenter, args.images, out, args.alpha)
    print(f"segmented {len(images)} images: <stem>_classes.png (Cityscapes label ids) and _overlay.png in {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Latency of the semantic (and instance) core: model only vs end to end; a table and JSON."""
    from seg_perception.apps.bench import run_bench
    from seg_perception.config.overrides import node_params

    instance = node_params("instance", None, args.instance_param or ()) if "instance" in args.models else None
    run_bench(
        _params(args, "semantic"),
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
    """The demo drive through the live ROS 2 graph, in a child process: the demo is a ROS tool,
    and the command line sits below the ROS layer. The child checks the options, reports like
    this process and prints to the same stdout/stderr; its exit code is the command's."""
    import subprocess

    from seg_perception.apps.cli_common import demo_argv

    child = subprocess.Popen([sys.executable, "-m", "seg_perception.ros.tools.demo", *demo_argv(args)])
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (one process group): let it stop its nodes and say so.
        return child.wait()


def cmd_replay(args: argparse.Namespace) -> int:
    """Every frame of a bag through the core; outputs to a new bag, report beside it."""
    import signal

    from seg_perception.apps.replay import ReplayOptions, replay_bag
    from seg_perception.apps.replay_report import report_paths
    from seg_perception.pipeline.perception import parse_models

    options = ReplayOptions(
        topics=tuple(args.topic or ()),
        models=parse_models(args.models),
        overlays=args.overlays,
        confidence=args.confidence,
        copy_input=args.copy_input,
        storage=args.storage or "",
        limit=args.limit,
        batch=args.batch,
        progress=not args.no_progress,
        results=_results_dir(args),
        city=args.city,
    )
    # `kill` as well as Ctrl-C closes the output bag properly (KeyboardInterrupt unwinds the writer).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = replay_bag(args.bag, args.out, _params(args, "perception"), options, args.report)
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
    if options.results:
        print(f"Cityscapes result files (semantic/, instance/, panoptic/; CITYSCAPES_RESULTS each): {options.results}")
    if report.stopped.startswith("bag fault"):
        # The frames before the fault are kept and reported above; the run still failed.
        raise SegPerceptionError(f"{report.stopped} ({report.frames} frames before it are in the output)")
    return 0


def _results_dir(args: argparse.Namespace) -> str:
    """Where `replay` writes the official Cityscapes result files ("" with --format bag)."""
    if args.format != "cityscapes":
        if args.results:
            raise SegPerceptionError("--results needs --format cityscapes")
        return ""
    return str(args.results or f"{Path(args.out)}.cityscapes")


def cmd_synth(args: argparse.Namespace) -> int:
    """Generated road scenes in the Cityscapes layout and, with --bag, as a drive bag."""
    from seg_perception.synthetic.params import CONDITIONS
    from seg_perception.synthetic.writers import write_cityscapes, write_cityscapes_and_drive_bag

    if args.condition and args.condition not in CONDITIONS:
        raise SegPerceptionError(f"--condition must be one of {list(CONDITIONS)}, got {args.condition!r}")
    if not args.bag:
        paths = write_cityscapes(args.out, _scenes(args), split=args.split)
        print(f"wrote {len(paths)} frames in the Cityscapes layout under {args.out}")
        return 0
    # Each frame rendered once, written to both (rendering is most of the time).
    paths, bag = write_cityscapes_and_drive_bag(
        args.out,
        args.bag,
        _scenes(args),
        split=args.split,
        fps=args.fps,
        storage=args.storage,
        compressed=args.compressed,
    )
    print(f"wrote {len(paths)} frames in the Cityscapes layout under {args.out}")
    print(f"wrote drive bag {bag} ({args.storage}, {args.fps:g} Hz)")
    return 0


def _scenes(args: argparse.Namespace) -> Iterator[SyntheticFrame]:
    """The frames `synth` writes: consecutive frames of one drive
    (--drive, or --bag: a bag is a drive), else independent scenes."""
    from seg_perception.synthetic.frames import generate_drive, generate_frame

    if args.drive or args.bag:
        return generate_drive(args.seed, args.frames, args.width, args.height, args.fps, args.condition)
    return (generate_frame(args.seed, i, args.width, args.height, args.condition) for i in range(args.frames))


def cmd_eval(args: argparse.Namespace) -> int:
    """Cityscapes / COCO / panoptic metrics of predictions against ground truth (folders or bags):
    our prediction files or bags, or result files in the official Cityscapes conventions."""
    import json

    from seg_perception.metrics.bags import is_bag
    from seg_perception.metrics.cityscapes.results_eval import detect_format, evaluate_official_results
    from seg_perception.metrics.run import format_report, jsonable, main_eval

    fmt = getattr(args, "format", "auto")
    if fmt == "auto":
        fmt = "seg_perception" if is_bag(args.pred) or is_bag(args.gt) else detect_format(args.pred, args.gt)
    if fmt == "seg_perception":
        return main_eval(args.pred, args.gt, args.json)
    result = evaluate_official_results(args.pred, args.gt)
    print(format_report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(jsonable(result), indent=1) + "\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the --model task on generated road scenes (resumes from OUT/last.pth)."""
    from seg_perception.training.config import TrainConfig
    from seg_perception.training.loop import train

    cfg = TrainConfig(
        out=args.out or f"out/train/{args.model}",
        task=args.model,
        model=args.arch or DEFAULT_ARCH[args.model],
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


def _refuse_single_paths(args: argparse.Namespace) -> None:
    # The instance model is three graphs named after the model: one file path cannot name them.
    if getattr(args, "onnx", None) or getattr(args, "engine", None) or getattr(args, "out", None):
        raise SegPerceptionError("--model instance writes three files: use --engines-dir, not --out/--onnx/--engine")


def _calibration(args: argparse.Namespace, size: tuple[int, int]) -> np.ndarray | None:
    """The frames of --calib or --calib-bag at ``size``; None without either."""
    from seg_perception.apps.engines import calibration_frames

    if args.calib and args.calib_bag:
        raise SegPerceptionError("give --calib or --calib-bag, not both")
    return calibration_frames(size, args.calib, args.calib_bag, args.calib_limit, args.calib_topic)


def cmd_export(args: argparse.Namespace) -> int:
    """ONNX export of the configured model (fp32, fp16 AutoCast or int8 Q/DQ) into the engines
    folder, verified in ONNX Runtime, then the accuracy gate against torch fp32."""
    import time

    from seg_perception.apps import engines
    from seg_perception.export.accuracy import instance_accuracy_gate, semantic_accuracy_gate
    from seg_perception.inference.artifacts import describe, read_onnx_metadata

    if args.model == "instance":
        target = engines.instance_target(_params(args, "instance"), args.precision, args.engines_dir)
        _refuse_single_paths(args)
        calib = _calibration(args, target.input_size)
        started = time.perf_counter()
        segmenter, paths = engines.export_instance(
            target, calib, max_batch=args.max_batch, int8_high_precision=args.int8_high_precision
        )
        meta = read_onnx_metadata(paths["backbone"])
        print(
            f"exported {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - started:.1f} s: "
            f"{meta['check_detections']} torch detections on {meta['check_frames']} scenes, "
            f"{float(meta['check_matched_fraction']):.1%} matched (gate {meta['check_gate']})"
        )
        if args.accuracy_frames > 0:
            print(
                instance_accuracy_gate(
                    segmenter, paths, target.precision, frames=args.accuracy_frames, max_drop=args.max_drop
                )
            )
        return 0
    semantic = engines.semantic_target(_params(args, "semantic"), args.precision, args.engines_dir)
    calib = _calibration(args, semantic.input_size)
    started = time.perf_counter()
    out = Path(args.out) if args.out else semantic.onnx
    model, path = engines.export_semantic(
        semantic, out, calib, max_batch=args.max_batch, int8_high_precision=args.int8_high_precision
    )
    print(f"{path}: {describe(read_onnx_metadata(path))}, {time.perf_counter() - started:.1f} s")
    if args.accuracy_frames > 0:
        print(
            semantic_accuracy_gate(
                model,
                path,
                semantic.precision,
                semantic.input_size,
                semantic.config.labels,
                frames=args.accuracy_frames,
                max_drop=args.max_drop,
            )
        )
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    """TensorRT engine(s) and their JSON sidecars from the exported ONNX; one summary line per engine."""
    from seg_perception.apps import engines
    from seg_perception.export.engine_build import build_engine
    from seg_perception.inference.tensorrt_backend import engine_summary

    # What both kinds of build take from the command line.
    common = {
        "opt_batch": args.opt_batch,
        "max_batch": args.max_batch,
        "workspace_mb": args.workspace_mb,
        "timing_cache": args.timing_cache,
        "rtx_targets": args.rtx_target or (),
        "library": args.library,
    }
    if args.model == "instance":
        from seg_perception.export.engine_build import build_instance_engines

        target = engines.instance_target(_params(args, "instance"), args.precision, args.engines_dir)
        _refuse_single_paths(args)
        build_instance_engines(
            target.onnx,
            target.engine,
            target.precision,
            max_rois=args.max_rois,
            max_detections=args.max_detections,
            **common,
        )
        for path in target.engine.values():
            print(engine_summary(path))
        return 0
    semantic = engines.semantic_target(
        _params(args, "semantic"), args.precision, args.engines_dir, args.onnx, args.engine
    )
    build_engine(semantic.onnx, semantic.engine, semantic.precision, min_batch=args.min_batch, **common)
    print(engine_summary(semantic.engine))
    return 0
