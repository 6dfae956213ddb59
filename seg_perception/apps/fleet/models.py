"""The model stage: a worker that loads each model set once (one for ``fleet``; baseline and
candidate for ``compare``) and runs the frames of a batch through them, each decoded once.

Frames go through :meth:`PerceptionCore.run` as ``replay`` runs them (:func:`replay_models.auto_batch`):
in pairs on the CPU where class maps are all the models write (those come out the same bytes
in a pair as alone), else one at a time, so a frame's outputs are the same whichever process
runs it and whatever frame shares its batch. On the CPU the worker also scores its frames
(``score``: a score stage of its own would be a process taking the models' cores, and one
more trip of every prediction between processes); where the models have a GPU a CPU stage
scores them, so the GPU does not wait. The raw frame is dropped here: only what the driver
needs travels on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.apps.fleet.frames import FRAME
from seg_perception.apps.fleet.records import Outputs, Prediction, pack
from seg_perception.apps.fleet.scoring import ScoreOptions, scored
from seg_perception.apps.output_messages import output_messages
from seg_perception.apps.replay_models import auto_batch
from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig, section
from seg_perception.errors import ImageError
from seg_perception.inference.threads import set_cpu_threads
from seg_perception.io import bags
from seg_perception.io.image import DecodedImage, to_rgb
from seg_perception.pipeline.perception import FrameResult, PerceptionCore, stuff_score

THUMBNAIL_WIDTH = 480  # camera image kept for compare's side-by-side frames


@dataclass(frozen=True)
class ModelSet:
    """A named set of parameters (``config/perception.yaml`` + overrides) and models."""

    name: str
    params: Mapping[str, Any]
    models: tuple[str, ...]


def check_model_set(model_set: ModelSet) -> None:
    """The parameters as the workers will read them (files included), checked by the driver
    before any worker starts: a wrong path is one line, not a dying actor pool."""
    if "semantic" in model_set.models:
        SemanticModelConfig.from_params(section(model_set.params, "semantic"))
    if "instance" in model_set.models:
        InstanceModelConfig.from_params(section(model_set.params, "instance"))
    stuff_score(model_set.params)


class ModelWorker:
    """Ray Data ``map_batches`` class: ``__init__`` loads the models (once per worker process),
    ``__call__`` runs the batch's frames and adds ``latency_ms``, ``worker`` (pid) and ``node``
    columns, empties ``raw`` and, with ``score``, adds the score stage's columns
    (:func:`scoring.scored`); without, ``pred`` (packed :class:`Prediction`, ``b""`` for
    non-frames and bad frames) for the score stage."""

    def __init__(
        self,
        model_sets: Sequence[ModelSet],
        threads: int,
        thumbnails: bool = False,
        messages: bool = False,
        node: str = "",
        score: ScoreOptions | None = None,
    ) -> None:
        # Ray sets OMP_NUM_THREADS to the actor's CPUs; the inference threads are set here on purpose.
        set_cpu_threads(threads)
        self.cores = [PerceptionCore.from_params(s.params, s.models) for s in model_sets]
        # Decided here, where the models run: the driver's devices may not be this node's.
        self.frames_per_run = min(auto_batch(s.params, s.models, confidence=False) for s in model_sets)
        self.thumbnails = thumbnails
        self.messages = messages
        self.node = node
        self.score = score
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        n = len(batch["kind"])
        predictions: list[Prediction | None] = [None] * n
        latency = np.zeros(n, np.float64)
        errors = np.asarray(batch["error"], object).copy()
        frames = [i for i in range(n) if batch["kind"][i] == FRAME]
        for start in range(0, len(frames), self.frames_per_run):
            started = time.perf_counter()
            rows = frames[start : start + self.frames_per_run]
            done = self.predict_rows(batch, rows, errors)
            per_frame_ms = (time.perf_counter() - started) * 1e3 / max(len(done), 1)  # a frame's share of the run
            for i, prediction in done.items():
                predictions[i], latency[i] = prediction, per_frame_ms
        out = dict(batch)
        out.update(
            latency_ms=latency,
            error=errors,
            raw=np.array([b""] * n, object),
            worker=np.full(n, self.pid, np.int64),
            node=np.array([self.node] * n, object),
        )
        if self.score is not None:
            return scored(out, predictions, self.score)
        out["pred"] = np.empty(n, object)
        for i, frame in enumerate(predictions):
            out["pred"][i] = pack(frame) if frame is not None else b""
        return out

    def predict_rows(
        self, batch: Mapping[str, npt.NDArray[Any]], rows: Sequence[int], errors: npt.NDArray[Any]
    ) -> dict[int, Prediction]:
        """The predictions of the frames in ``rows`` of ``batch``, run together; a frame that
        does not decode, or that the models fail on, gets its ``errors`` entry instead."""
        decoded = {}
        for i in rows:
            try:
                decoded[i] = bags.decode_frame(batch["raw"][i], str(batch["msgtype"][i]))
            except ImageError as err:
                errors[i] = f"bad frame: {err}"
        try:
            return dict(zip(decoded, self.predict(list(decoded.values()))))
        except Exception as err:
            # Broad on purpose: one frame the models fail on is its own error row, as a broken
            # drive is, not the end of a fleet of drives (nor of its pair: each is run alone).
            if len(decoded) > 1:
                return {k: v for i in decoded for k, v in self.predict_rows(batch, [i], errors).items()}
            errors[next(iter(decoded))] = f"models failed: {type(err).__name__}: {err}"
            return {}

    def predict(self, frames: Sequence[tuple[Any, DecodedImage]]) -> list[Prediction]:
        """(message, decoded image) frames through every model set, together."""
        if not frames:
            return []
        images = [image for _, image in frames]
        results = [core.run(images) for core in self.cores]  # per set, per frame
        return [
            self._prediction(msg, image, [per_set[k] for per_set in results]) for k, (msg, image) in enumerate(frames)
        ]

    def _prediction(self, msg: Any, image: DecodedImage, results: Sequence[FrameResult]) -> Prediction:
        thumbnail = None
        if self.thumbnails:
            rgb = to_rgb(image)
            height = max(1, round(rgb.shape[0] * THUMBNAIL_WIDTH / rgb.shape[1]))
            thumbnail = np.asarray(cv2.resize(rgb, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA), np.uint8)
        messages = tuple(output_messages(msg.header, results[0])) if self.messages else ()
        outputs = tuple(outputs_of(r) for r in results)
        return Prediction(bags.stamp_ns(msg.header), str(msg.header.frame_id), outputs, thumbnail, messages)

    @property
    def labels(self) -> Any:
        return self.cores[0].labels


def outputs_of(result: FrameResult) -> Outputs:
    instance = result.instance
    return Outputs(
        result.semantic.class_map if result.semantic is not None else None,
        instance.instance_map if instance is not None else None,
        {r.value: r.score for r in instance.instances} if instance is not None else None,
        result.panoptic,
    )
