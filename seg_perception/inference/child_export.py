"""Serving-time exports, run in a child process.

``backend: onnxruntime`` named explicitly exports the graph it needs when none is on disk
(``auto`` never does). The export tools (onnx, ModelOpt, the exporter's verification) are
not loaded into a serving process: the model is written to a temporary file and
``python -m seg_perception.export.for_serving`` exports it, as ``seg-perception export`` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from seg_perception.errors import BackendError
from seg_perception.resources import import_root

EXPORT_MODULE = "seg_perception.export.for_serving"


def export_in_child(
    kind: str,
    model: nn.Module,
    target: Path | Mapping[str, Path],
    input_size: tuple[int, int],
    precision: str,
    *,
    dynamic_size: bool = False,
) -> None:
    """Export ``model`` (kind ``semantic``: the graph to ``target``; ``instance``: the split
    graphs, part -> path) and wait. BackendError with the child's error line on failure."""
    with tempfile.TemporaryDirectory(prefix="seg_export_job_") as tmp:
        model_file = Path(tmp) / "model.pt"
        torch.save(model, model_file)  # the whole module: the child needs no architecture name
        job = {
            "kind": kind,
            "model_file": str(model_file),
            "target": str(target) if isinstance(target, Path) else {k: str(v) for k, v in target.items()},
            "input_size": list(input_size),
            "precision": precision,
            "dynamic_size": dynamic_size,
        }
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(import_root()), env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(
            [sys.executable, "-m", EXPORT_MODULE, json.dumps(job)], env=env, capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        error = next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1] if lines else "")
        raise BackendError(f"{kind} ONNX export failed: {error.removeprefix('error: ') or f'exit {proc.returncode}'}")
