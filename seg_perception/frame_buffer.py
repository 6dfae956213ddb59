"""Newest-frame-wins hand-off between subscription callbacks and the inference worker.

The callback only stores the newest frame per camera (overwriting an unprocessed one counts
as a drop); the worker takes the newest frame of every camera that has one, as one batch.
Stale frames never queue, so latency stays bounded however fast the cameras run.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
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

    _slots: dict[Hashable, Any] = field(default_factory=dict)
    counters: dict[Hashable, CameraCounters] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def put(self, camera: Hashable, frame: Any) -> None:
        with self._cond:
            counters = self.counters.setdefault(camera, CameraCounters())
            counters.received += 1
            if camera in self._slots:
                counters.dropped += 1
            self._slots[camera] = frame
            self._cond.notify()

    def take(self, timeout: float | None = None) -> dict[Hashable, Any]:
        """Wait up to ``timeout`` s for frames; return and clear every newest frame.
        Returns {} on timeout or after :meth:`close`."""
        with self._cond:
            self._cond.wait_for(lambda: self._slots or self._closed, timeout=timeout)
            frames, self._slots = self._slots, {}
            return frames

    def count(self, camera: Hashable, **increments: int) -> None:
        """Add to a camera's counters (processed=, bad_input=)."""
        with self._cond:
            counters = self.counters.setdefault(camera, CameraCounters())
            for name, value in increments.items():
                setattr(counters, name, getattr(counters, name) + value)

    def snapshot(self) -> dict[Hashable, CameraCounters]:
        with self._cond:
            return {k: CameraCounters(**vars(v)) for k, v in self.counters.items()}

    def close(self) -> None:
        """Wake a waiting worker for shutdown; pending frames are discarded."""
        with self._cond:
            self._closed = True
            self._slots.clear()
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
