"""`seg-perception` command line: one error boundary, one subcommand per job.

Heavy modules are imported inside each subcommand so `--help` stays instant.
"""

# The docstring above is the description of `seg-perception --help` (a contract). This module is
# the parser and the boundary; the commands are in apps/commands.py.

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from seg_perception.apps.cli_common import (
    PROG,
    CommandParser,
    add_demo_options,
    add_model_options,
    add_param_option,
    non_negative_int,
    positive_float,
    positive_int,
    run_guarded,
    setup_logging,
)
from seg_perception.apps.commands import (
    cmd_bench,
    cmd_build_engine,
    cmd_demo,
    cmd_eval,
    cmd_export,
    cmd_replay,
    cmd_segment,
    cmd_synth,
    cmd_train,
)
from seg_perception.apps.fleet.command import add_fleet_commands

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_engine_commands(sub: _SubParsers) -> None:
    """`export` and `build-engine`: the model artifacts the nodes load."""
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
    add_model_options(p)
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
    add_model_options(p)
    p.set_defaults(func=cmd_build_engine)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: -v, then one sub-parser per command (its function in ``func``)."""
    parser: argparse.ArgumentParser = CommandParser(prog=PROG, description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="semantic segmentation of image files or folders (offline core)")
    p.add_argument("images", nargs="+", help="image files, or folders searched for *.png / *.jpg")
    p.add_argument("--out", required=True)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument(
        "--format",
        choices=("seg_perception", "cityscapes"),
        default="seg_perception",
        help="seg_perception (default): <stem>_classes.png and _overlay.png; cityscapes: only "
        "<stem>_pred_labelIds.png, the official result convention (send the folder as CITYSCAPES_RESULTS)",
    )
    add_model_options(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("bench", help="latency: model only vs end to end (decode, pre, model, post, encode)")
    p.add_argument("--width", type=positive_int, default=1920)
    p.add_argument("--height", type=positive_int, default=1080)
    p.add_argument("--iterations", type=positive_int, default=20)
    p.add_argument("--warmup", type=non_negative_int, default=3)
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
    add_model_options(p)
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
    p.add_argument("--limit", type=non_negative_int, default=0, help="stop after this many frames (0: all)")
    p.add_argument(
        "--batch",
        type=non_negative_int,
        default=0,
        help="frames of each camera that go through the models together. 1: the models run exactly as in a "
        "serial loop (same arithmetic, same bits). Default (0): on the CPU, where class maps are all they write "
        "(--models semantic without --confidence), 2, with one single-threaded copy of the models per core "
        "(class maps came out bit-identical; confidence maps and detection scores would differ in the last "
        "bits); else 1",
    )
    p.add_argument("--report", help="report path without suffix (default: <out>.report.json/.md)")
    p.add_argument(
        "--format",
        choices=("bag", "cityscapes"),
        default="bag",
        help="bag (default): predictions in the output bag only; cityscapes: also as official Cityscapes result "
        "files in --results, one folder per task (semantic/, instance/, panoptic/)",
    )
    p.add_argument("--results", help="folder of the Cityscapes result files (default: <out>.cityscapes)")
    p.add_argument(
        "--city",
        default="synth",
        help="<city> of the result stems <city>_<camera index>_<frame index> (default: synth, as `synth` names frames)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", help="parameter file (ROS format) overriding config/perception.yaml")
    add_param_option(p, "override one parameter, e.g. -p semantic.backend=onnxruntime")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("synth", help="generate road scenes: Cityscapes layout and/or a drive bag")
    p.add_argument("--out", required=True, help="folder for leftImg8bit/ and gtFine/")
    p.add_argument("--frames", type=positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=positive_int, default=1024)
    p.add_argument("--height", type=positive_int, default=512)
    p.add_argument("--condition", help="force one condition (default: drawn per frame/drive)")
    p.add_argument("--split", default="val")
    p.add_argument("--drive", action="store_true", help="consecutive frames of one drive (default with --bag)")
    p.add_argument("--bag", help="also write a rosbag2 drive here (camera + ground-truth topics)")
    p.add_argument("--storage", choices=["sqlite3", "mcap"], default="mcap", help="bag storage (default: mcap)")
    p.add_argument("--compressed", choices=["", "jpeg", "png"], default="", help="camera as CompressedImage")
    p.add_argument("--fps", type=positive_float, default=10.0)
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
        help="folder with <stem>_classes.png, _instances.png/.json, _panoptic.png; or with official "
        "Cityscapes result files (see --format); or a bag with <camera>/semantic/class_map, instance/..., panoptic/...",
    )
    p.add_argument(
        "--gt",
        required=True,
        help="Cityscapes-layout folder with gtFine/.../*_gtFine_labelIds.png; or a "
        "bag with <camera>/gt/label_ids, gt/instance_ids (gt/condition)",
    )
    p.add_argument("--json", help="also write the results here")
    p.add_argument(
        "--format",
        choices=("auto", "seg_perception", "cityscapes"),
        default="auto",
        help="convention of --pred: ours (above), or the official Cityscapes result files "
        "(<stem>*.png label ids, <stem>*.txt instance lists, COCO panoptic json + PNG folder); "
        "auto (default): whichever the folder holds",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "demo",
        help="synthetic drive bag -> bag_player -> perception_node -> bag_recorder over DDS "
        "-> overlay video, PNGs, metrics",
    )
    add_demo_options(p)
    p.set_defaults(func=cmd_demo)

    add_engine_commands(sub)
    add_fleet_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand behind the one error boundary."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded(partial(args.func, args))


if __name__ == "__main__":
    raise SystemExit(main())
