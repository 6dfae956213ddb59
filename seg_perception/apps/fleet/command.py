"""``seg-perception fleet`` and ``seg-perception compare``: their options and what they print.
Imports nothing heavy at module level (the command line's ``--help`` stays instant)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seg_perception.apps.cli_common import (
    add_param_option,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from seg_perception.errors import ConfigError

if TYPE_CHECKING:
    from seg_perception.apps.fleet.drives import Drive
    from seg_perception.apps.fleet.job import JobOptions, JobOutcome
    from seg_perception.apps.fleet.models import ModelSet


def add_fleet_commands(sub: Any) -> None:
    p = sub.add_parser("fleet", help="every frame of many drives through the models on Ray; one merged report")
    _common_options(p)
    p.add_argument(
        "--write-bags",
        action="store_true",
        help="also write each drive's outputs, as replay does, to OUT/drives/*/outputs",
    )
    p.add_argument("--config", help="parameter file (ROS format) overriding config/perception.yaml")
    add_param_option(p, "override one parameter, e.g. -p semantic.backend=onnxruntime")
    p.set_defaults(func=cmd_fleet)

    p = sub.add_parser("compare", help="the same drives through a baseline and a candidate: deltas, regressions")
    _common_options(p)
    p.add_argument("--baseline", help="baseline parameter file (default: config/perception.yaml)")
    p.add_argument("--candidate", help="candidate parameter file (default: config/perception.yaml)")
    p.add_argument("--baseline-param", action="append", metavar="KEY=VALUE", help="override a baseline parameter")
    p.add_argument("--candidate-param", action="append", metavar="KEY=VALUE", help="override a candidate parameter")
    p.add_argument(
        "--threshold", type=positive_float, default=1.0, help="flag deltas below -POINTS (default 1.0 point)"
    )
    p.add_argument(
        "--fail-on-regression",
        type=positive_float,
        metavar="POINTS",
        help="exit 1 if any overall, per-class or per-condition metric drops by more than POINTS",
    )
    p.add_argument("--worst", type=non_negative_int, default=8, help="side-by-side PNGs of the K worst frames")
    p.set_defaults(func=cmd_compare)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("bags", nargs="*", help="bags, or folders whose sub-folders are bags")
    p.add_argument("--manifest", help="file with one bag per line and optional tags (condition=night or just night)")
    p.add_argument("--out", required=True, help="output folder; re-running skips the drives already done there")
    p.add_argument("--models", default="semantic,instance", help="semantic, instance or both (default; + panoptic)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray on this machine)")
    p.add_argument("--actors", type=non_negative_int, default=0, help="model actors (default: 1 per GPU, or cores/2)")
    p.add_argument(
        "--threads", type=non_negative_int, default=0, help="inference threads per actor (default: cores/actors)"
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=4,
        help="frames per call of a model actor (default 4); on the CPU the models run them in pairs where class maps "
        "are all they write, else one at a time",
    )
    p.add_argument(
        "--score",
        choices=("auto", "actors", "stage"),
        default="auto",
        help="where frames are scored: in the model actors, or in CPU tasks of their own (default auto: in the actors "
        "unless they have GPUs)",
    )
    p.add_argument(
        "--window-s",
        type=non_negative_float,
        default=60.0,
        help="read a drive in windows of this many seconds of log time, one read task each (0: one per drive; "
        "default 60). The results are those of one pass; a drive stays the unit of resume",
    )
    p.add_argument("--no-progress", action="store_true")


def cmd_fleet(args: argparse.Namespace) -> int:
    from seg_perception.apps.commands import _params
    from seg_perception.apps.fleet.models import ModelSet
    from seg_perception.pipeline.perception import parse_models

    models = parse_models(args.models)
    sets = [ModelSet("model", _params(args, "perception"), models)]
    report, outcome, paths, _ = _run(args, sets, title="fleet")
    h = report["metrics"]["model"]
    sem = (h.get("semantic") or {}).get("mIoU")
    pq = ((h.get("panoptic") or {}).get("All") or {}).get("pq")
    print(
        _summary(report, outcome)
        + (f"; mIoU {100 * sem:.1f} %" if sem is not None else "")
        + (f", PQ {100 * pq:.1f} %" if pq is not None else "")
    )
    print("report: {} and {}".format(*paths))
    return _status(report, outcome)


def cmd_compare(args: argparse.Namespace) -> int:
    from seg_perception.apps.fleet.compare import comparison, comparison_markdown, copy_worst_panels
    from seg_perception.apps.fleet.models import ModelSet
    from seg_perception.config.overrides import node_params
    from seg_perception.pipeline.perception import parse_models

    models = parse_models(args.models)
    sets = [
        ModelSet(name, node_params("perception", path, overrides or ()), models)
        for name, path, overrides in (
            ("baseline", args.baseline, args.baseline_param),
            ("candidate", args.candidate, args.candidate_param),
        )
    ]
    report, outcome, paths, drives = _run(
        args, sets, title="compare", panels=args.worst, panel_drop=args.threshold / 100
    )
    result = comparison(report, args.threshold)
    panels = copy_worst_panels(report, drives, Path(args.out)) if args.worst else []
    _append_comparison(paths, report, result, panels, comparison_markdown(result, panels))
    overall = result["deltas"]["overall"]
    print(
        _summary(report, outcome) + "; candidate - baseline: " + ", ".join(f"{k} {v:+.2f}" for k, v in overall.items())
    )
    for r in result["regressions"]:
        print(f"REGRESSION {r['where']}: {r['metric']} {r['delta']:+.2f} points")
    print("report: {} and {}".format(*paths))
    status = _status(report, outcome)
    limit = args.fail_on_regression
    if limit is not None and any(r["delta"] < -limit for r in comparison(report, limit)["regressions"]):
        print(f"FAIL: a metric dropped by more than {limit:g} points")
        return max(status, 1)
    return status


def _drives(args: argparse.Namespace) -> list[Drive]:
    from seg_perception.apps.fleet.drives import collect_drives

    return collect_drives(args.bags, args.manifest)


def _run(
    args: argparse.Namespace, sets: list[ModelSet], title: str, panels: int = 0, panel_drop: float = -1.0
) -> tuple[dict[str, Any], JobOutcome, tuple[Path, Path], list[Drive]]:
    import signal

    from seg_perception.apps.fleet.drives import check_output_folder, fingerprint
    from seg_perception.apps.fleet.frames import survey
    from seg_perception.apps.fleet.job import JobOptions, run_job
    from seg_perception.apps.fleet.models import check_model_set
    from seg_perception.apps.fleet.report import collect_report, write_report
    from seg_perception.labels import load_label_set

    _check_installed()
    for model_set in sets:
        check_model_set(model_set)
    drives = _drives(args)
    surveys = [survey(d.path, args.window_s) for d in drives]  # a bag without a camera topic stops here
    out = Path(args.out)
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = load_label_set(_label_set(sets[0]))
    stamp = fingerprint({s.name: dict(s.params) for s in sets}, sets[0].models)
    options = JobOptions(
        actors=args.actors,
        threads=args.threads,
        batch_size=args.batch_size,
        address=args.address or "",
        progress=not args.no_progress,
        panels=panels,
        panel_drop=panel_drop,
        keep_predictions=getattr(args, "write_bags", False),
        score=args.score,
    )
    # `kill` as well as Ctrl-C: the finished drives are on disk; the report covers them.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    outcome = run_job(drives, sets, labels, out, stamp, options, surveys)
    report = collect_report(drives, out, [s.name for s in sets], labels, stamp)
    report["run"] = _run_record(outcome, options)
    paths = write_report(report, out, title)
    if outcome.interrupted:
        print(_summary(report, outcome))
        raise KeyboardInterrupt
    return report, outcome, paths, drives


def _check_installed() -> None:
    import importlib.util

    missing = [m for m in ("ray", "pyarrow", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)} missing: pip install -r requirements-fleet.txt (Ray Data)")


def _label_set(model_set: ModelSet) -> str:
    from seg_perception.config.records import section

    model = "semantic" if "semantic" in model_set.models else "instance"
    return str(section(model_set.params, model)["labels"])


def _run_record(outcome: JobOutcome, options: JobOptions) -> dict[str, Any]:
    return {
        "drives_run": len(outcome.records),
        "drives_skipped": outcome.skipped,
        "frames_run": outcome.frames,
        "wall_s": round(outcome.wall_s, 3),
        "frames_per_s": round(outcome.frames / outcome.wall_s, 3) if outcome.wall_s > 0 else None,
        # first to last frame at the driver: the pipeline's rate once Ray and the models are up
        "steady_s": round(outcome.last_frame_s - outcome.first_frame_s, 3),
        "interrupted": outcome.interrupted,
        "batch_size": options.batch_size,
    }


def _summary(report: dict[str, Any], outcome: JobOutcome) -> str:
    rate = f" at {outcome.frames / outcome.wall_s:.2f} frames/s" if outcome.wall_s > 0 else ""
    return (
        f"{report['done']}/{report['drives']} drives done ({len(outcome.records)} this run{rate}, "
        f"{outcome.skipped} already done, {len(report['errors'])} failed, {len(report['not_run'])} not run), "
        f"{report['frames']} frames"
    )


def _status(report: dict[str, Any], outcome: JobOutcome) -> int:
    """1 if a drive failed (its error is in the report), else 0."""
    for err in report["errors"]:
        print(f"FAILED {err['bag']}: {err['error']}")
    return 1 if report["errors"] else 0


def _append_comparison(
    paths: tuple[Path, Path],
    report: dict[str, Any],
    result: dict[str, Any],
    panels: list[dict[str, Any]],
    markdown: str,
) -> None:
    """The comparison into the report the fleet wrote: JSON key ``comparison``, Markdown at its end."""
    import json

    from seg_perception.metrics.run import jsonable

    data = {**report, "comparison": {**result, "worst_panels": panels}}
    paths[0].write_text(json.dumps(jsonable(data), indent=1) + "\n")
    with open(paths[1], "a") as f:
        f.write(markdown)
