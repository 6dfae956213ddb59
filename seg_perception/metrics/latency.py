"""Rolling latency and rate statistics for diagnostics and benchmarks."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np


def percentiles_ms(samples_s: Any, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """{"p50": ms, ...} of latency samples in seconds (NaN when there are none)."""
    data = np.asarray(samples_s, dtype=np.float64)
    if data.size == 0:
        return {f"p{int(q)}": float("nan") for q in qs}
    return {f"p{int(q)}": float(v) for q, v in zip(qs, np.percentile(data * 1e3, qs))}


class RollingStats:
    """Latency samples (seconds) and event times over a bounded window."""

    def __init__(self, window: int = 300) -> None:
        self._latency: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, latency_s: float, now: float | None = None) -> None:
        with self._lock:
            self._latency.append(latency_s)
            self._times.append(time.monotonic() if now is None else now)

    def percentiles_ms(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
        with self._lock:
            data = list(self._latency)
        return percentiles_ms(data, qs)

    def rate_hz(self, horizon_s: float = 5.0, now: float | None = None) -> float:
        """Events per second over the last ``horizon_s`` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], 1e-9)
        return len(recent) / span
