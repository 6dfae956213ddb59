"""The background engine build: the child process a node starts under ``engine_policy:
build_in_background`` (:class:`seg_perception.inference.engine_policy.BackgroundEngineBuild`).

It exports the semantic ONNX if it is missing and builds the TensorRT engine if it is
missing or stale, at low priority with one thread, one builder per engine across processes;
events go to stdout as one JSON object a line, logs to stderr. Running here keeps the export
and build tools (onnx, ModelOpt, the TensorRT builder) out of the serving process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seg_perception.errors import BackendError
from seg_perception.inference.artifacts import sidecar_path
from seg_perception.inference.engine_policy import BuildJob, engine_problem

log = logging.getLogger(__name__)


# -- the child process ----------------------------------------------------------------------------
def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _lower_priority() -> None:
    """The serving process keeps the cores: nice 10, one torch thread, and die with the parent."""
    import torch

    with contextlib.suppress(OSError):
        os.nice(10)
    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        # PR_SET_PDEATHSIG: SIGTERM when the thread that started us ends (the node's main or
        # executor thread: it lives as long as the node), so a killed node leaves no build behind.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One builder per engine across processes (two nodes with the same model)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(job: BuildJob) -> dict[str, Any]:
    """Export the ONNX if missing, build the engine if missing or stale; the sidecar."""
    from seg_perception.export.engine_build import build_engine
    from seg_perception.export.onnx import export_semantic_onnx
    from seg_perception.inference.artifacts import onnx_metadata_matches
    from seg_perception.models.semantic import build_semantic_model

    onnx, engine = Path(job.onnx), Path(job.engine)
    model, _ = build_semantic_model(job.model, job.num_classes, job.checkpoint or None)
    with _exclusive(job.log_path):
        if engine_problem(engine, onnx, job.precision, lambda: model) is None:  # another process built it meanwhile
            side: dict[str, Any] = json.loads(sidecar_path(engine).read_text())
            return side
        if not onnx.exists():
            if job.precision == "int8":
                raise BackendError(
                    f"int8 needs calibration frames: export it first: seg-perception export "
                    f"--precision int8 --calib FRAMES --out {onnx}"
                )
            _emit("exporting", onnx=str(onnx))
            export_semantic_onnx(model, onnx, (job.input_height, job.input_width), job.precision)
        reason = onnx_metadata_matches(onnx, model, job.precision)
        if reason is not None:  # never overwrite an export the user made
            raise BackendError(
                f"cannot build from {onnx}: {reason}; re-export it: seg-perception export "
                f"--precision {job.precision} --out {onnx}"
            )
        _emit("building", engine=str(engine))
        side = build_engine(onnx, engine, job.precision, min_batch=1, opt_batch=1, max_batch=job.max_batch)
        _emit("built", engine=str(engine), seconds=side["build_seconds"])
        return side


def main(argv: list[str] | None = None) -> int:
    """Child entry: ``python -m seg_perception.export.background_build '<BuildJob JSON>'``.
    Events on stdout (one JSON object a line), logs on stderr; exit 0 = built."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        job = BuildJob(**json.loads(args[0]))
    except (IndexError, TypeError, json.JSONDecodeError) as err:
        print(f"usage: python -m {__name__} '<BuildJob JSON>' ({err})", file=sys.stderr)
        return 2
    _lower_priority()
    try:
        run_job(job)
    except Exception as err:
        # Broad on purpose: the child's boundary: whatever failed is reported as one event line and exit code 2.
        log.exception("engine build failed")
        _emit("failed", error=f"{type(err).__name__}: {err}".splitlines()[0])
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
