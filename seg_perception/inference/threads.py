"""How many threads CPU inference uses in this process (torch and ONNX Runtime).

One setting per process: the ``cpu_threads`` node parameter, so several nodes on one machine
can share its cores.
"""

from __future__ import annotations

import os

_THREAD_LIMIT = 0  # set_cpu_threads; 0 = no limit


def cpu_threads() -> int:
    """Threads for CPU inference: the cores this process may run on (the affinity mask, not
    the machine's core count), or fewer after :func:`set_cpu_threads`."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    return min(cores, _THREAD_LIMIT) if _THREAD_LIMIT else cores


def set_cpu_threads(threads: int) -> None:
    """Limit CPU inference of this process to ``threads`` threads (0: one per core): torch's
    intra-op pool now, ONNX Runtime sessions created from now on, so several nodes on one
    machine can share its cores (the ``cpu_threads`` node parameter)."""
    global _THREAD_LIMIT
    import torch

    _THREAD_LIMIT = max(0, int(threads))
    torch.set_num_threads(cpu_threads())
