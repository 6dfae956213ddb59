"""The model stage: a worker that loads each model set once (one for ``fleet``; baseline and
candidate for ``compare``) and runs every frame of a batch through them, the frame decoded once.

Frames go through :meth:`PerceptionCore.run` one camera frame at a time, as ``replay`` runs a
single-camera bag, so a frame's outputs are the same bytes whichever process runs it. The
predictions leave as one pickled record per frame (:class:`records.Prediction`); the raw frame is
dropped here, so only class and instance maps travel on.
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
from seg_perception.apps.output_messages import output_messages
from seg_perception.config.records import InstanceModelConfig, SemanticModelConfig, section
from seg_perception.errors import ImageError
from seg_perception.inference.threads import set_cpu_threads
from seg_perception.io import bags
from seg_perception.io.image import to_rgb
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
    ``__call__`` adds ``pred`` (packed :class:`Prediction`, ``b""`` for non-frames and bad
    frames), ``latency_ms``, ``worker`` (pid) and ``node`` columns and empties ``raw``."""

    def __init__(
        self,
        model_sets: Sequence[ModelSet],
        threads: int,
        thumbnails: bool = False,
        messages: bool = False,
        node: str = "",
    ) -> None:
        # Ray sets OMP_NUM_THREADS to the actor's CPUs; the inference threads are set here on purpose.
        set_cpu_threads(threads)
        self.cores = [PerceptionCore.from_params(s.params, s.models) for s in model_sets]
        self.thumbnails = thumbnails
        self.messages = messages
        self.node = node
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        n = len(batch["kind"])
        preds = np.empty(n, object)
        latency = np.zeros(n, np.float64)
        errors = np.asarray(batch["error"], object).copy()
        for i in range(n):
            preds[i] = b""
            if batch["kind"][i] != FRAME:
                continue
            started = time.perf_counter()
            try:
                prediction = self.predict(batch["raw"][i], str(batch["msgtype"][i]))
            except ImageError as err:
                errors[i] = f"bad frame: {err}"
                continue
            latency[i] = (time.perf_counter() - started) * 1e3
            preds[i] = pack(prediction)
        out = dict(batch)
        out.update(
            pred=preds,
            latency_ms=latency,
            error=errors,
            raw=np.array([b""] * n, object),
            worker=np.full(n, self.pid, np.int64),
            node=np.array([self.node] * n, object),
        )
        return out

    def predict(self, raw: bytes, msgtype: str) -> Prediction:
        """Decode once, run every model set; ImageError for a frame that does not decode."""
        msg, image = bags.decode_frame(raw, msgtype)
        results = [core.run([image])[0] for core in self.cores]
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
