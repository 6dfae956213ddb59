"""The fleet job on Ray Data, and the only module that imports ray.

Plan: one read task per drive, or per window of a long drive (:func:`frames.read_drive`) ->
a pool of model actors (:class:`models.ModelWorker`, models loaded once per actor,
``num_gpus`` each where the cluster has GPUs) which, on the CPU, also score their frames; with
GPUs, score tasks on CPU (:func:`scoring.score_batch`) -> the driver, which takes each drive's
rows in frame order and writes its results as soon as it is complete
(:class:`collect.DriveCollector`).

With no ``--address`` (and no ``RAY_ADDRESS``) Ray starts on this machine, sized for it: its
cores, an object store of at most a quarter of its memory, no dashboard. Faults: an error in a
drive is that drive's ``end`` row (the read stage catches it); a model worker process that dies
is restarted by Ray and its batch retried (``max_restarts`` / ``max_task_retries``), which
gives the same outputs, since a frame's outputs do not depend on the process that runs it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_perception.apps.fleet.collect import DriveCollector
from seg_perception.apps.fleet.drives import Drive, completed, drive_dir
from seg_perception.apps.fleet.frames import Survey, read_drive
from seg_perception.apps.fleet.models import ModelSet, ModelWorker
from seg_perception.apps.fleet.scoring import ScoreOptions, score_batch
from seg_perception.errors import BackendError, ConfigError
from seg_perception.labels import LabelSet

log = logging.getLogger(__name__)

LIGHT_TASK_CPUS = 0.25  # read and score tasks: four fit in the CPU the actors leave free


@dataclass(frozen=True)
class JobOptions:
    actors: int = 0  # model actors; 0: one per GPU, else one per two cores
    threads: int = 0  # inference threads per actor; 0: the cluster's cores / actors
    batch_size: int = 4  # frames per call of a model actor
    address: str = ""  # an existing cluster ("" : RAY_ADDRESS, else a local one)
    gpus_per_actor: float = -1.0  # -1: 1 where the cluster has GPUs, else 0
    progress: bool = True
    keep_predictions: bool = False  # --write-bags: each drive's outputs into <drive folder>/outputs
    panels: int = 0  # compare: side-by-side frames kept per drive
    panel_drop: float = -1.0
    score: str = "auto"  # where frames are scored: "actors", "stage" (tasks of their own), "auto" (actors without GPUs)


@dataclass
class JobOutcome:
    records: dict[int, dict[str, Any]]  # drive index -> completion record, this run's drives
    skipped: int  # drives already complete
    interrupted: bool = False
    wall_s: float = 0.0  # the whole job: Ray's start and the models' load included
    frames: int = 0
    first_frame_s: float = 0.0  # when the driver had its first and last frame (since the start)
    last_frame_s: float = 0.0


def run_job(
    drives: Sequence[Drive],
    model_sets: Sequence[ModelSet],
    labels: LabelSet,
    out: Path,
    stamp: str,
    options: JobOptions,
    surveys: Sequence[Survey] = (),
) -> JobOutcome:
    """Process every drive of ``drives`` not already complete under ``stamp``; return what ran.
    ``surveys``: each drive's frames (for progress) and windows (default: one, frames unknown)."""
    todo = [d for d in drives if completed(out, d, stamp) is None]
    plans = {d.index: s for d, s in zip(drives, surveys)}
    windows = {d.index: plans.get(d.index, Survey(None, [(0, 0)])).windows for d in todo}
    outcome = JobOutcome({}, len(drives) - len(todo))
    if not todo:
        return outcome
    started = time.monotonic()
    # Ray Data configures its loggers on import; this is the setting it reads.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    import ray

    # The fleet shows its own progress; Ray Data would warn on every run that its bars are off.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    _connect(ray, options.address)
    try:
        dataset = _plan(ray, todo, windows, model_sets, labels, options)
        names = [s.name for s in model_sets]
        collectors = {
            d.index: DriveCollector(
                d, drive_dir(out, d), names, labels, options.panels, options.keep_predictions, len(windows[d.index])
            )
            for d in todo
        }
        total = sum(plans[d.index].frames or 0 for d in todo if d.index in plans)
        with _Progress(total, len(todo), options.progress) as progress:
            try:
                for row in dataset.iter_rows():
                    collector = collectors[int(row["drive"])]
                    collector.add(row)
                    if row["kind"] == "frame":
                        outcome.frames += 1
                        outcome.last_frame_s = time.monotonic() - started
                        outcome.first_frame_s = outcome.first_frame_s or outcome.last_frame_s
                        progress(frames=1)
                    if collector.complete:
                        outcome.records[collector.drive.index] = collector.finish(stamp)
                        del collectors[collector.drive.index]
                        progress(drives=1)
            except KeyboardInterrupt:
                outcome.interrupted = True
            except ray.exceptions.RayError as err:  # a stage or a worker's start failed: one line
                cause = getattr(err, "cause", None) or err
                last = str(cause).strip().splitlines()[-1:] or [""]
                raise BackendError(f"the fleet job failed: {type(cause).__name__}: {last[0]}") from None
    finally:
        ray.shutdown()  # the local cluster ends; from a remote one this driver disconnects
    outcome.wall_s = time.monotonic() - started
    return outcome


def _connect(ray: Any, address: str) -> None:
    """Join ``address`` (or RAY_ADDRESS), else start Ray here, sized for this machine."""
    address = address or os.environ.get("RAY_ADDRESS", "")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as err:  # Ray raises ConnectionError, RuntimeError or its own errors here
            raise ConfigError(f"cannot reach the Ray cluster at {address}: {type(err).__name__}: {err}") from None
        return
    cores = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # Ray turns token authentication on for a new local cluster and warns so on every run.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # "local": a new cluster here, never one a test or an earlier crash left in /tmp/ray.
    ray.init(address="local", num_cpus=cores, object_store_memory=min(memory // 4, 8 << 30), **quiet)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable cluster for minutes; a ``host:port`` that refuses a TCP
    connection is an error at once (``auto`` and ``local`` are left to Ray)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {err}") from None


def _plan(
    ray: Any,
    todo: Sequence[Drive],
    windows: Mapping[int, Sequence[tuple[int, int]]],
    model_sets: Sequence[ModelSet],
    labels: LabelSet,
    options: JobOptions,
) -> Any:
    data_context = ray.data.DataContext.get_current()
    data_context.enable_progress_bars = False
    data_context.print_on_execution_start = False
    # Rows leave a read task in blocks of this size: small, so frames stream to the models
    # while the drive is still being read (the default, 128 MiB, is a whole short drive).
    data_context.target_max_block_size = 16 << 20
    # A model worker killed while loading (say, out of memory) is replaced; a model that
    # cannot load at all fails the job after a few tries instead of looping.
    data_context.max_consecutive_actor_init_deaths = 3
    # Ray Data samples each map task's memory in a thread it starts per batch (every second,
    # from /proc): a few per cent of an actor's CPU for a statistic nobody reads here.
    data_context.memory_usage_poll_interval_s = None
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    actors = options.actors or (int(gpus) if gpus >= 1 else max(1, int(cpus) // 2))
    gpus_per_actor = options.gpus_per_actor if options.gpus_per_actor >= 0 else (1.0 if gpus >= actors else 0.0)
    threads = options.threads or max(1, int(cpus) // actors)
    # CPUs here are Ray's scheduling units, not threads (each actor runs `threads` inference
    # threads whatever it reserves): actors leave one CPU's worth of slots to the read and
    # score tasks, so frames keep flowing to and from the models.
    actor_cpus = max(0.05, min(float(threads), (cpus - 1.0) / actors))
    items = [
        {"drive": d.index, "path": d.path, "condition": d.condition, "window": w, "start": start, "stop": stop}
        for d in todo
        for w, (start, stop) in enumerate(windows[d.index])
    ]
    score = ScoreOptions(labels, options.keep_predictions, options.panel_drop if options.panels else -1.0)
    score_in_actors = options.score == "actors" or (options.score == "auto" and gpus_per_actor == 0)
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.flat_map(read_drive, num_cpus=LIGHT_TASK_CPUS)
    dataset = dataset.map_batches(
        _ray_worker_class(ray),
        fn_constructor_kwargs={
            "model_sets": list(model_sets),
            "threads": threads,
            "thumbnails": options.panels > 0,
            "messages": options.keep_predictions,
            "score": score if score_in_actors else None,
        },
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
        num_gpus=gpus_per_actor,
        # No restart options: Ray Data's actor pools restart a dead actor and retry its batch
        # without limit by default (max_restarts / max_task_retries = -1).
    )
    if score_in_actors:
        return dataset
    return dataset.map_batches(
        score_batch,
        fn_kwargs={"options": score},
        batch_size=options.batch_size,
        batch_format="numpy",
        num_cpus=LIGHT_TASK_CPUS,
    )


def _ray_worker_class(ray: Any) -> type:
    class RayModelWorker(ModelWorker):
        """The model worker, told which cluster node it runs on (the table's ``node`` column)."""

        def __init__(
            self,
            model_sets: Sequence[ModelSet],
            threads: int,
            thumbnails: bool = False,
            messages: bool = False,
            score: ScoreOptions | None = None,
        ) -> None:
            node = ray.get_runtime_context().get_node_id()
            super().__init__(model_sets, threads, thumbnails, messages, node, score)

    return RayModelWorker


class _Progress:
    """Frames and drives done, with rate and ETA, on stderr (tqdm)."""

    def __init__(self, frames: int, drives: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=frames or None, unit="frame", desc="fleet", file=sys.stderr, disable=not enabled, dynamic_ncols=True
        )
        self.drives, self.done = drives, 0
        self.bar.set_postfix_str(f"drives 0/{drives}")

    def __enter__(self) -> Callable[..., None]:
        return self.update

    def update(self, frames: int = 0, drives: int = 0) -> None:
        if drives:
            self.done += drives
            self.bar.set_postfix_str(f"drives {self.done}/{self.drives}")
        self.bar.update(frames)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
