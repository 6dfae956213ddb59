"""Replay's models: how they run (:func:`model_plan`): as a serial loop runs them, in the
frame loop's thread, or, where class maps are all they write, on the CPU as one
single-threaded copy of them per core (one model on two threads keeps them waiting on each
other; two copies keep both cores busy); each batch's outputs written behind them
(replay_pipeline.OrderedWorker), in the order the batches were given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias

from seg_perception.apps.replay_pipeline import POLL_S, OrderedWorker, join, put, through_ctrl_c
from seg_perception.io.image import DecodedImage

if TYPE_CHECKING:
    from seg_perception.pipeline.perception import FrameResult, PerceptionCore

_Results: TypeAlias = "Future[tuple[list[FrameResult], float]]"  # a batch's results, seconds in the models

log = logging.getLogger(__name__)

# Model threads at most: each holds a copy of the models; one writer thread serves them all.
MAX_MODEL_THREADS = 8


class Frame(NamedTuple):
    """A decoded camera frame waiting for the models; ``number``: its camera's message index."""

    conn: Any  # the camera's rosbags Connection
    logtime: int
    msg: Any  # the deserialised Image / CompressedImage
    image: DecodedImage
    number: int


class _Counts(Protocol):  # what the pipeline updates of the replay report
    frames: int
    latencies_ms: list[float]


def batch_full(batch: Sequence[Frame], camera: int, cameras: int, per_camera: int) -> bool:
    """Whether ``batch`` must go through the models before a frame of ``camera`` (a
    connection id) joins it: it holds ``per_camera`` frames of that camera, or of every one."""
    return sum(f.conn.id == camera for f in batch) >= per_camera or len(batch) >= per_camera * cameras


class ModelPool:
    """Batches through the models in the calling thread (``workers`` <= 1), or in ``workers``
    threads with models of their own: the first takes ``core``, the others build theirs with
    ``make_core`` meanwhile (one that cannot is logged and left out). The copies do the same
    arithmetic: only the order in which batches finish depends on the threads."""

    def __init__(
        self,
        core: PerceptionCore,
        with_confidence: bool,
        workers: int = 1,
        make_core: Callable[[], PerceptionCore] | None = None,
    ) -> None:
        self.core, self.with_confidence = core, with_confidence
        self._jobs: queue.Queue[tuple[list[DecodedImage], _Results] | None]
        self._jobs = queue.Queue(maxsize=workers)  # with those running: 2 x workers batches in flight
        self._threads = [
            threading.Thread(target=self._work, args=(core if i == 0 else None, make_core), name=f"replay-models-{i}")
            for i in range(workers if workers > 1 and make_core is not None else 0)
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        self._closed = False

    @classmethod
    def of(
        cls, core: PerceptionCore, params: Mapping[str, Any], models: Sequence[str], workers: int, with_confidence: bool
    ) -> ModelPool:
        """``workers`` threads, the copies of ``core`` built from ``params``."""
        return cls(core, with_confidence, workers, functools.partial(_copy_of_core, params, models))

    def submit(self, images: list[DecodedImage]) -> _Results:
        """The batch's (results, seconds in the models). Without threads it is run here (an
        error raised here); else once a thread ran it (this blocks while every thread is
        busy and as many batches wait)."""
        future: _Results = Future()
        if not self._threads:
            started = time.perf_counter()
            results = self.core.run(images, with_confidence=self.with_confidence)
            future.set_result((results, time.perf_counter() - started))
        else:
            self._jobs.put((images, future))
        return future

    def _work(self, core: PerceptionCore | None, make_core: Callable[[], PerceptionCore]) -> None:
        own = core is None
        if core is None:
            try:
                core = make_core()
            except Exception as err:
                # Broad on purpose: the same parameters built the first copy; replay goes on without this one.
                log.warning("a model worker could not load its models, replaying with fewer: %s", err)
                return
        try:
            while (job := self._jobs.get()) is not None:
                images, future = job
                started = time.perf_counter()
                try:
                    results = core.run(images, with_confidence=self.with_confidence)
                except BaseException as err:
                    # Broad on purpose: the error travels to the writer thread with the batch's future.
                    future.set_exception(err)
                else:
                    future.set_result((results, time.perf_counter() - started))
        finally:
            if own:
                core.close()

    def close(self) -> None:
        """Let the threads finish the batches queued, then stop them (again: nothing)."""
        if not self._closed:
            self._closed = True
            for thread in self._threads:  # a stop for each thread still there (one that failed to start is not)
                through_ctrl_c(functools.partial(self._stop, thread))
        for thread in self._threads:
            join(thread)

    def _stop(self, thread: threading.Thread) -> bool:
        return not thread.is_alive() or put(self._jobs, None)


class ModelPlan(NamedTuple):
    batch: int  # frames of a camera per batch
    copies: int  # single-threaded model copies, one thread each; 0: the models run in the loop's thread
    background: bool  # reading ahead and writing behind in threads of their own


def model_plan(params: Mapping[str, Any], models: Sequence[str], confidence: bool, batch: int) -> ModelPlan:
    """How replay runs the models.

    Batches and threads change the last bits of the models' arithmetic (logits by ~1e-5 on
    the CPU): class maps (an argmax) came out bit-identical in every check, confidence maps
    and detection scores do not. So ``batch`` 0 (automatic) is 2, with one model copy per CPU
    thread inference may use (``cpu_threads``, 0: every core this process may run on; at most
    :data:`MAX_MODEL_THREADS`), only where class maps are all the models write (the semantic
    model, no confidence); else 1, as is an explicit 1: the serial loop's arithmetic. On the
    CPU that loop runs in one thread, as before: its models keep every core busy, and work
    beside them only slows them down. On a GPU (batch 1 unless asked for) reading and
    writing overlap the models.
    """
    from seg_perception.inference.threads import cpu_threads

    if not on_cpu(params, models):
        return ModelPlan(batch or 1, 0, True)  # batches there are unmeasured: 1 unless asked for
    batch = batch or (2 if class_maps_only(models, confidence) else 1)
    if batch == 1:
        return ModelPlan(batch, 0, False)
    budget = params.get("cpu_threads", 0)
    budget = budget if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0 else cpu_threads()
    return ModelPlan(batch, max(1, min(budget, MAX_MODEL_THREADS)), True)


def on_cpu(params: Mapping[str, Any], models: Sequence[str]) -> bool:
    """Whether every model of ``models`` runs on this process's CPU."""
    from seg_perception.inference.registry import resolve_device

    return all(resolve_device(str(params.get(f"{m}.device", "auto"))) == "cpu" for m in models)


def class_maps_only(models: Sequence[str], confidence: bool) -> bool:
    """Whether class maps are all ``models`` write: the outputs batches leave bit-identical."""
    return tuple(models) == ("semantic",) and not confidence


def auto_batch(params: Mapping[str, Any], models: Sequence[str], confidence: bool) -> int:
    """Frames per model batch that leave the outputs as the serial loop's (:func:`model_plan`):
    2 on the CPU where class maps are all the models write, else 1."""
    return 2 if class_maps_only(models, confidence) and on_cpu(params, models) else 1


@contextlib.contextmanager
def single_threaded_models(enabled: bool) -> Iterator[None]:
    """Within: CPU inference single-threaded (torch, and ONNX Runtime sessions made here);
    restored after."""
    if not enabled:
        yield
        return
    import torch

    from seg_perception.inference.threads import cpu_threads, set_cpu_threads

    torch_threads, limit = torch.get_num_threads(), cpu_threads()
    set_cpu_threads(1)
    try:
        yield
    finally:
        set_cpu_threads(limit)
        torch.set_num_threads(torch_threads)


_COPYING = threading.Lock()  # one copy built at a time (and the log level below restored right)


def _copy_of_core(params: Mapping[str, Any], models: Sequence[str]) -> PerceptionCore:
    """Another copy of the models, for a model thread, without the start-up INFO line the
    first one logged (warnings still show)."""
    from seg_perception.pipeline.perception import PerceptionCore

    registry = logging.getLogger("seg_perception.inference.registry")
    with _COPYING:
        level = registry.level
        registry.setLevel(max(level, logging.WARNING))
        try:
            return PerceptionCore.from_params(params, models)
        finally:
            registry.setLevel(level)


def frames_in_flight(threads: int, batch_frames: int) -> int:
    """Frames given to the models but not yet written, at most: what the model threads run
    and have queued (2 batches each), one batch being written and one being gathered."""
    return (2 * max(threads, 1) + 2) * batch_frames


class ModelsThenWriter:
    """Batches through ``pool``; each frame's outputs handled by ``write_frame(frame,
    result)`` in the worker thread, in the order the batches were given; at most ``window``
    frames given and not yet written (the memory bound: see :func:`frames_in_flight`).

    :meth:`close` sets ``counts.frames`` to the frames actually written (the frame loop
    counts them as they join a batch, which Ctrl-C can leave unwritten).
    """

    def __init__(
        self,
        pool: ModelPool,
        write_frame: Callable[[Frame, FrameResult], object],
        counts: _Counts,
        progress: Any,  # tqdm
        worker: OrderedWorker,
        window: int,
    ) -> None:
        self.pool, self.write_frame, self.worker = pool, write_frame, worker
        self.counts, self.progress = counts, progress
        self.written = 0  # the worker's count
        self._room = threading.Semaphore(window)

    def behind(self, fn: Callable[..., object], *args: Any) -> None:
        """``fn(*args)`` in the worker thread, after everything submitted before."""
        self.worker.submit(functools.partial(fn, *args))

    def run(self, batch: Sequence[Frame]) -> None:
        """``batch`` through the models; its outputs written behind."""
        if not batch:
            return
        for _ in batch:
            while not self._room.acquire(timeout=POLL_S):
                self.worker.check()  # a failed worker would never make room
        self.behind(self._write, list(batch), self.pool.submit([f.image for f in batch]))

    def _write(self, batch: list[Frame], future: _Results) -> None:
        results, model_s = future.result()  # a model error is raised here, ending the work
        started = time.perf_counter()
        for frame, result in zip(batch, results):
            self.write_frame(frame, result)
        # per frame: its share of the batch's time in the models and here (decode excluded, as before)
        per_frame_ms = (model_s + time.perf_counter() - started) * 1e3 / len(batch)
        self.counts.latencies_ms += [per_frame_ms] * len(batch)
        self.written += len(batch)
        self.progress.update(len(batch))
        self._room.release(len(batch))

    def close(self) -> None:
        """Wait until everything given is written (raises the worker's first error); the
        pool's threads stopped."""
        try:
            self.worker.call(lambda: None)  # everything before it has run
        finally:
            self.counts.frames = self.written
            self.pool.close()
