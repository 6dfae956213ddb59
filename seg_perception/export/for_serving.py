"""Exports a serving process asks for: ``backend: onnxruntime`` named explicitly with no graph
on disk yet. The serving process hands the model over as a file and waits
(:func:`seg_perception.inference.child_export.export_in_child`); this child runs the same
export, with its verification, as ``seg-perception export`` does.

Entry: ``python -m seg_perception.export.for_serving '<job JSON>'``; exit 0 = written, else
one ``error:`` line on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from seg_perception.errors import SegPerceptionError


def run(job: dict[str, Any]) -> None:
    """Export the pickled model of ``job`` (kind semantic: one path; instance: part -> path)."""
    model = torch.load(job["model_file"], map_location="cpu", weights_only=False)
    input_size = tuple(job["input_size"])
    if job["kind"] == "semantic":
        from seg_perception.export.onnx import export_semantic_onnx

        export_semantic_onnx(
            model, Path(job["target"]), input_size, job["precision"], dynamic_size=bool(job["dynamic_size"])
        )
    else:
        from seg_perception.export.instance import export_instance_onnx

        export_instance_onnx(model, {part: Path(p) for part, p in job["target"].items()}, input_size, job["precision"])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        run(json.loads(args[0]))
    except (IndexError, KeyError, json.JSONDecodeError) as err:
        print(
            f"error: usage: python -m {__spec__.name if __spec__ else __name__} '<job JSON>' ({err})", file=sys.stderr
        )
        return 2
    except SegPerceptionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
