"""Newest-frame-wins hand-off between subscription callbacks and the inference worker.

The callback only stores the newest frame per camera (overwriting an unprocessed one counts
as a drop); the worker takes the newest frame of every camera that has one, as one batch.
Stale frames never queue, so latency stays bounded however fast the cameras run, and one slot
per camera means a fast camera can only overwrite its own frames, never starve a slow one.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CameraCounters:
    received: int = 0
    dropped: int = 0  # overwritten before the worker took them
    processed: int = 0
    bad_input: int = 0


@dataclass
class LatestFrameBuffer:
    """Thread-safe newest-frame slots, one per camera key."""

    _slots: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, CameraCounters] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False
    # Round of the last take() that served each camera: with a batch limit, the cameras
    # served longest ago go first, so a fast camera cannot monopolise a small batch.
    _served: dict[str, int] = field(default_factory=dict)
    _round: int = 0

    def put(self, camera: str, frame: Any) -> None:
        with self._cond:
            counters = self.counters.setdefault(camera, CameraCounters())
            counters.received += 1
            if camera in self._slots:
                counters.dropped += 1
            self._slots[camera] = frame
            self._cond.notify()

    def take(
        self,
        timeout: float | None = None,
        *,
        gather_s: float = 0.0,
        expected: Collection[str] = (),
        max_batch: int = 0,
    ) -> dict[str, Any]:
        """Wait up to ``timeout`` s for a frame; return and clear the newest frames.

        ``gather_s`` > 0: once the first frame is there, wait up to that long more for every
        camera in ``expected`` to have one (stragglers join the batch instead of waiting a
        whole cycle). ``max_batch`` > 0 caps the batch; the cameras served longest ago are
        taken first and the others keep their slot for the next take. Returns {} on timeout
        or after :meth:`close`.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._slots or self._closed, timeout=timeout) or self._closed:
                return {}
            if gather_s > 0 and expected:
                self._cond.wait_for(lambda: self._closed or all(c in self._slots for c in expected), gather_s)
                if self._is_closed():  # closed while gathering
                    return {}
            order = sorted(self._slots, key=lambda c: self._served.get(c, -1))
            chosen = order[:max_batch] if max_batch > 0 else order
            self._round += 1
            frames = {}
            for camera in chosen:
                frames[camera] = self._slots.pop(camera)
                self._served[camera] = self._round
            return frames

    def _is_closed(self) -> bool:
        return self._closed

    def count(self, camera: str, **increments: int) -> None:
        """Add to a camera's counters (processed=, bad_input=)."""
        with self._cond:
            counters = self.counters.setdefault(camera, CameraCounters())
            for name, value in increments.items():
                setattr(counters, name, getattr(counters, name) + value)

    def snapshot(self) -> dict[str, CameraCounters]:
        with self._cond:
            return {k: CameraCounters(**vars(v)) for k, v in self.counters.items()}

    def pending(self) -> int:
        """Frames waiting in slots (received, neither processed nor dropped yet)."""
        with self._cond:
            return len(self._slots)

    def close(self) -> None:
        """Wake a waiting worker for shutdown; pending frames are discarded."""
        with self._cond:
            self._closed = True
            self._slots.clear()
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
