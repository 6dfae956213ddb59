"""Replay's pipelining, every queue bounded (memory stays a few frames deep):
:class:`ReadAhead` reads the bag in a thread of its own, and :class:`OrderedWorker` runs
everything behind the models (outputs serialised and written, evaluation, result files) in
one thread, strictly in the order the frame loop gave it, so the output bag, the metrics
and the result files are those of a serial loop. The models themselves: replay_models.py.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

_T = TypeVar("_T")

POLL_S = 0.1  # how often a blocked thread looks whether it should stop


class _End(NamedTuple):
    error: BaseException | None = None  # the source is done: exhausted, or failed with this


class ReadAhead(Generic[_T]):
    """Iterate ``source`` in a background thread, ``depth`` items ahead of the consumer:
    iterating this yields its items in order, then raises the exception that ended it, if
    any. :meth:`close` (before the source's resources are closed) stops the thread. Not
    ``threaded``: the source is iterated in the consumer's thread, as it comes."""

    def __init__(self, source: Iterator[_T], depth: int = 8, threaded: bool = True) -> None:
        self._source = source
        self._queue: queue.Queue[_T | _End] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="replay-read", daemon=True)
        self._threaded = threaded
        if threaded:
            self._thread.start()

    def _produce(self) -> None:
        end = _End()
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as err:
            # Broad on purpose: whatever ended the source is the consumer's to handle, in order.
            end = _End(err)
        finally:
            # A generator stopped early is closed here, before the reader it reads from is.
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        self._put(end)

    def _put(self, item: _T | _End) -> bool:
        while not self._stop.is_set():
            if put(self._queue, item):
                return True
        return False

    def __iter__(self) -> Iterator[_T]:
        if not self._threaded:
            yield from self._source
            return
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread (it finishes the item it is reading)."""
        self._stop.set()
        if self._threaded:
            join(self._thread)
        else:
            getattr(self._source, "close", lambda: None)()


class OrderedWorker:
    """Run submitted callables one after another in one background thread, in order.

    ``setup`` runs first in that thread (its error raised by the constructor), ``teardown``
    last, at :meth:`close`, whatever happened: a resource bound to its thread (rosbags'
    sqlite3 writer) lives there. :meth:`submit` blocks while ``depth`` callables wait. The
    first exception of a callable stops the work (later ones are dropped) and is raised by
    :meth:`submit`, :meth:`call` and :meth:`close` in the calling thread. Not ``threaded``:
    everything runs in the calling thread as it is submitted (errors raised at once).
    """

    def __init__(
        self,
        depth: int = 8,
        setup: Callable[[], object] | None = None,
        teardown: Callable[[], object] | None = None,
        threaded: bool = True,
    ) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._setup, self._teardown = setup, teardown
        self._closing = False
        self.threaded = threaded
        started = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(started,), name="replay-write", daemon=True)
        if not threaded:
            if setup is not None:
                setup()
            return
        self._thread.start()
        started.wait()
        self.check()

    def _work(self, started: threading.Event) -> None:
        try:
            if self._setup is not None:
                self._setup()
        except BaseException as err:
            # Broad on purpose: the worker's boundary; the constructor re-raises it.
            self._error = err
            return
        finally:
            started.set()
        try:
            while (job := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # failed: drop the rest, until close
                try:
                    job()
                except BaseException as err:
                    # Broad on purpose: the worker's boundary; the submitting thread re-raises it.
                    self._error = err
        finally:
            if self._teardown is not None:
                try:
                    self._teardown()
                except BaseException as err:
                    # Broad on purpose: as above; an earlier error is the one reported.
                    self._error = self._error or err

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job`` after those already queued; raises the error of an earlier job."""
        if not self.threaded:
            job()
            return
        while True:
            self.check()
            if not self._thread.is_alive():
                raise RuntimeError("the worker thread is closed")
            if put(self._queue, job):
                return

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in the worker, after everything queued before; its result (or error).
        Waits through Ctrl-C (re-raised after), as :meth:`close` does."""
        if not self.threaded:
            return fn(*args)
        done = threading.Event()
        box: list[_T] = []

        def job() -> None:
            try:
                box.append(fn(*args))
            finally:
                done.set()

        self.submit(job)
        through_ctrl_c(lambda: done.wait(POLL_S) or self._error is not None or not self._thread.is_alive())
        self.check()
        return box[0]

    def close(self) -> None:
        """Run what is queued, then the teardown, and stop the thread; raises the first error."""
        if not self.threaded:
            if not self._closing and self._teardown is not None:
                self._closing = True
                self._teardown()
            return
        if not self._closing:
            self._closing = True
            through_ctrl_c(lambda: not self._thread.is_alive() or put(self._queue, None))
        join(self._thread)
        self.check()

    def check(self) -> None:
        """Raise the error that stopped the work, if one did."""
        if self._error is not None:
            raise self._error


def through_ctrl_c(step: Callable[[], object]) -> None:
    """Call ``step`` until it returns true, Ctrl-C or not (re-raised after): a thread told to
    stop finishes a bounded amount of work (a queue's depth), and what it uses (the bag
    reader, the writer) must not be closed under its feet."""
    interrupted = None
    while True:
        try:
            if step():
                break
        except KeyboardInterrupt as err:
            interrupted = err
    if interrupted is not None:
        raise interrupted


def join(thread: threading.Thread) -> None:
    """Wait for ``thread`` to end, Ctrl-C or not (see :func:`through_ctrl_c`)."""

    def joined() -> bool:
        thread.join(POLL_S)
        return not thread.is_alive()

    through_ctrl_c(joined)


def put(q: queue.Queue[Any], item: Any) -> bool:
    """``item`` put into ``q``, or False when it stayed full for a while."""
    try:
        q.put(item, timeout=POLL_S)
    except queue.Full:
        return False
    return True
