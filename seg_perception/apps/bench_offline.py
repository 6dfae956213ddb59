"""Offline throughput: ``seg-perception replay`` against the loop a user writes in twenty lines.

``python -m seg_perception.apps.bench_offline --out out/bench_offline.json``

One generated drive bag (``--frames`` x ``--width`` x ``--height`` rgb8, made once with the
project's synthetic drive generator, kept in ``--bag`` when given, else in a temporary folder)
goes through every contender of :data:`CONTENDERS`, each writing its class maps into a new bag:

* ``loop``: :func:`tutorial_loop`, rosbags ``AnyReader`` -> rosbags-image
  ``message_to_cvimage`` -> torchvision's DeepLabV3 class with the shipped checkpoint ->
  argmax -> nearest resize -> rosbags ``Writer``, written with plain torch / cv2 calls, not
  seg_perception's core;
* ``replay``: :func:`~seg_perception.apps.replay.replay_bag`, semantic model only, the shipped
  parameters (the same checkpoint and input size, 256x512);
* whatever else is registered (:func:`contender`): ``callable(bag, out_dir) -> frames`` or
  ``-> (frames, steady_s)``; ``out_dir`` is an empty folder the contender writes its bag(s) in.

Each contender is timed as a whole (``wall``: the call, model load included) and in steady
state (``steady``: the seconds it reports from its first frame to its last, model load
excluded; contenders returning a bare frame count have none). Every contender runs
``--repeat`` times, interleaved (loop, replay, ..., loop, replay, ...) so load from other
processes hits them alike; the medians are compared with the loop's. Before each run the
bench waits (up to ``--idle-wait`` seconds) for the machine's CPUs to be idle, and records
how busy they were during the run (all processes) and how much of it was this process, so a
run disturbed by other work shows as such. A run counts only if its output holds exactly
one class map per frame of the drive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seg_perception.apps.timing import machine
from seg_perception.config.records import node_defaults
from seg_perception.resources import resolve

# (bag, empty output folder) -> frames written, or (frames written, steady-state seconds)
Contender = Callable[[Path, Path], "int | tuple[int, float]"]

#: name -> contender, in the order they run; add more with :func:`contender`
CONTENDERS: dict[str, Contender] = {}

CAMERA_TOPIC = "/camera/image_raw"  # the generated drive's camera (synthetic.writers.DriveBagWriter)
CLASS_MAP_SUFFIX = "semantic/class_map"


def contender(name: str) -> Callable[[Contender], Contender]:
    """Register a contender under ``name`` (a decorator; ``CONTENDERS[name] = fn`` does the same)."""

    def register(fn: Contender) -> Contender:
        CONTENDERS[name] = fn
        return fn

    return register


@contender("loop")
def tutorial_loop(bag: Path, out_dir: Path) -> tuple[int, float]:
    """The loop a user writes: one frame at a time, shipped checkpoint, input 256x512."""
    import cv2
    import torch
    from rosbags.highlevel import AnyReader
    from rosbags.image import message_to_cvimage
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    checkpoint = torch.load(_shipped_checkpoint(), map_location="cpu", weights_only=True)
    model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    mean = torch.tensor(checkpoint["meta"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(checkpoint["meta"]["std"]).view(1, 3, 1, 1)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    image_type = typestore.types["sensor_msgs/msg/Image"]
    frames = 0
    with (
        AnyReader([bag], default_typestore=typestore) as reader,
        Writer(out_dir / "loop", version=8, storage_plugin=StoragePlugin.MCAP) as writer,
    ):
        out = writer.add_connection("/camera/semantic/class_map", "sensor_msgs/msg/Image", typestore=typestore)
        started = time.perf_counter()
        for conn, timestamp, raw in reader.messages([c for c in reader.connections if c.topic == CAMERA_TOPIC]):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            rgb = cv2.resize(message_to_cvimage(msg, "rgb8"), (512, 256), interpolation=cv2.INTER_LINEAR)
            x = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255 - mean) / std
            with torch.inference_mode():
                classes = model(x)["out"].argmax(1)[0].to(torch.uint8).numpy()
            classes = cv2.resize(classes, (msg.width, msg.height), interpolation=cv2.INTER_NEAREST)
            result = image_type(
                header=msg.header, height=msg.height, width=msg.width, encoding="mono8",
                is_bigendian=0, step=msg.width, data=classes.reshape(-1),
            )  # fmt: skip
            writer.write(out, timestamp, typestore.serialize_cdr(result, "sensor_msgs/msg/Image"))
            frames += 1
        steady = time.perf_counter() - started
    return frames, steady


@contender("replay")
def replay_semantic(bag: Path, out_dir: Path) -> tuple[int, float]:
    """``seg-perception replay BAG --models semantic`` with the shipped parameters."""
    from seg_perception.apps.replay import ReplayOptions, replay_bag

    options = ReplayOptions(models=("semantic",), progress=False)
    report = replay_bag(bag, out_dir / "replay", node_defaults("perception"), options)
    return report.frames, report.wall_s  # wall_s: the frame loop, after the model is loaded


def fleet_contender(actors: int) -> Contender:
    """``seg-perception fleet BAG --models semantic --write-bags`` with ``actors`` model actors
    of ``cores / actors`` inference threads each, as a process of its own (it starts Ray,
    whose start-up is in ``wall``). Steady state: the driver's first to last frame (its
    report's ``run.steady_s``) stretched by frames/(frames - 1), since it starts when the first
    frame is already through, where replay's starts before it."""

    def run(bag: Path, out_dir: Path) -> tuple[int, float]:
        out = out_dir / "fleet"
        cores = len(os.sched_getaffinity(0))
        command = [sys.executable, "-m", "seg_perception.apps.cli", "fleet", str(bag), "--out", str(out)]
        command += ["--models", "semantic", "--write-bags", "--no-progress"]
        command += ["--actors", str(actors), "--threads", str(max(1, cores // actors))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"fleet exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        run = json.loads((out / "report.json").read_text())["run"]
        frames = int(run["frames_run"])
        return frames, float(run["steady_s"]) * frames / max(frames - 1, 1)

    return run


def add_fleet_contenders() -> None:
    """Fleet with one and with two model actors, where Ray Data is installed."""
    import importlib.util

    if all(importlib.util.find_spec(m) is not None for m in ("ray", "pyarrow")):
        CONTENDERS["fleet-1-actor"] = fleet_contender(1)
        CONTENDERS["fleet-2-actors"] = fleet_contender(2)


def _shipped_checkpoint() -> Path:
    """The semantic checkpoint the shipped parameters name (engines/...pth)."""
    return resolve(str(node_defaults("perception")["semantic.checkpoint"]))


def drive_bag(folder: Path, frames: int, width: int, height: int, seed: int = 7) -> Path:
    """The generated drive bag in ``folder/drive_<frames>_<width>x<height>_<seed>``, made if missing."""
    path = folder / f"drive_{frames}_{width}x{height}_{seed}"
    if not (path / "metadata.yaml").is_file():
        from seg_perception.synthetic.frames import generate_drive
        from seg_perception.synthetic.writers import write_drive_bag

        shutil.rmtree(path, ignore_errors=True)  # a half-written bag of an interrupted run
        started = time.perf_counter()
        write_drive_bag(path, generate_drive(seed, frames, width, height, fps=10.0), fps=10.0)
        print(f"generated {path} ({frames} frames {width}x{height}) in {time.perf_counter() - started:.1f} s")
    return path


def class_maps_written(out_dir: Path) -> int:
    """Messages on ``.../semantic/class_map`` topics in every bag under ``out_dir``."""
    from rosbags.rosbag2 import Reader

    count = 0
    for metadata in sorted(out_dir.rglob("metadata.yaml")):
        with Reader(metadata.parent) as reader:
            count += sum(c.msgcount for c in reader.connections if c.topic.endswith(CLASS_MAP_SUFFIX))
    return count


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have spent busy so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def own_busy_s() -> float:
    """CPU seconds of this process (all its threads) and its waited-for children so far."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_for_idle(max_wait_s: float, busy_cores: float = 0.3, window_s: float = 2.0) -> float:
    """Wait until the machine used fewer than ``busy_cores`` cores over ``window_s`` (at most
    ``max_wait_s``); returns the cores last seen busy."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_s()
        time.sleep(window_s)
        busy = (machine_busy_s() - before) / window_s
        if busy < busy_cores or time.monotonic() >= deadline:
            return busy


def run_bench(
    bag: Path, names: Sequence[str], repeat: int, frames: int, scratch: Path, idle_wait_s: float = 0.0
) -> dict[str, Any]:
    """Time each contender ``repeat`` times, interleaved; the report (see :func:`main`)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names:
            out_dir = scratch / f"{name}_{i}"
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir(parents=True)
            idle = wait_for_idle(idle_wait_s) if idle_wait_s > 0 else None
            machine_before, own_before = machine_busy_s(), own_busy_s()
            started = time.perf_counter()
            returned = CONTENDERS[name](bag, out_dir)
            wall = time.perf_counter() - started
            machine_cores = (machine_busy_s() - machine_before) / wall
            own_cores = (own_busy_s() - own_before) / wall
            done, steady = returned if isinstance(returned, tuple) else (returned, None)
            written = class_maps_written(out_dir)
            run = {
                "frames": done,
                "class_maps": written,
                "ok": written == frames == done,
                "wall_s": wall,
                "steady_s": steady,
                "busy_cores_before": None if idle is None else round(idle, 2),
                "busy_cores_during": round(machine_cores, 2),
                "own_cores_during": round(own_cores, 2),
            }
            runs[name].append(run)
            steady_text = f"{steady:.2f} s" if steady is not None else "n/a"
            idle_text = "-" if idle is None else f"{idle:.2f}"
            print(
                f"  {name} run {i + 1}/{repeat}: {done} frames, {written} class maps, wall {wall:.2f} s, "
                f"steady {steady_text} (cores busy: {idle_text} before, {machine_cores:.2f} during, "
                f"{own_cores:.2f} of them this process)",
                flush=True,
            )
            shutil.rmtree(out_dir, ignore_errors=True)
    return {name: _summary(rs, frames) for name, rs in runs.items()}


def _summary(runs: list[dict[str, Any]], frames: int) -> dict[str, Any]:
    wall = statistics.median(r["wall_s"] for r in runs)
    steadies = [r["steady_s"] for r in runs if r["steady_s"] is not None]
    steady = statistics.median(steadies) if len(steadies) == len(runs) else None
    return {
        "ok": all(r["ok"] for r in runs),
        "wall_s": wall,
        "wall_fps": frames / wall,
        "steady_s": steady,
        "steady_fps": frames / steady if steady else None,
        "runs": runs,
    }


def table(results: dict[str, dict[str, Any]], baseline: str = "loop") -> str:
    """The printed table: medians and ratios against ``baseline``."""
    base = results.get(baseline)
    lines = [
        f"{'contender':<18} {'ok':<3} {'wall s':>7} {'fps':>6} {'x loop':>7} {'steady s':>9} {'fps':>6} {'x loop':>7}"
    ]
    for name, r in results.items():
        wall_ratio = f"{r['wall_fps'] / base['wall_fps']:.2f}" if base else "-"
        steady_ratio = (
            f"{r['steady_fps'] / base['steady_fps']:.2f}" if base and r["steady_fps"] and base["steady_fps"] else "-"
        )
        steady_s = f"{r['steady_s']:.2f}" if r["steady_s"] else "n/a"
        steady_fps = f"{r['steady_fps']:.2f}" if r["steady_fps"] else "n/a"
        lines.append(
            f"{name:<18} {'yes' if r['ok'] else 'NO':<3} {r['wall_s']:>7.2f} {r['wall_fps']:>6.2f} {wall_ratio:>7} "
            f"{steady_s:>9} {steady_fps:>6} {steady_ratio:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    add_fleet_contenders()
    parser = argparse.ArgumentParser(prog="python -m seg_perception.apps.bench_offline", description=__doc__)
    parser.add_argument("--out", default="out/bench_offline.json", help="JSON report")
    parser.add_argument("--bag", help="folder to keep the generated drive bag in (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each contender (the median is reported)")
    parser.add_argument("--only", nargs="+", choices=sorted(CONTENDERS), help="contenders to run (default: all)")
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=120.0,
        help="before each run, wait up to this many seconds for the CPUs to be idle (0: don't)",
    )
    args = parser.parse_args(argv)
    names = [n for n in CONTENDERS if not args.only or n in args.only]
    import cv2  # noqa: F401  # imported before the first run: no contender pays the imports
    import torchvision  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="bench_offline_") as tmp:
        bag = drive_bag(Path(args.bag) if args.bag else Path(tmp), args.frames, args.width, args.height)
        print(f"contenders {', '.join(names)}, {args.repeat} runs each, interleaved, on {bag}")
        results = run_bench(bag, names, args.repeat, args.frames, Path(tmp) / "runs", args.idle_wait)
    print(table(results))
    report = {
        "bag": {"frames": args.frames, "width": args.width, "height": args.height, "path": str(bag)},
        "repeat": args.repeat,
        "machine": machine(),
        "contenders": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
