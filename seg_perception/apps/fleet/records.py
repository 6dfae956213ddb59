"""What the model stage hands on: plain arrays, so the score stage and the driver unpickle it
without importing torch (a score worker that imports it spends seconds starting), packed
(:func:`pack`) for the trip between stages."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from seg_perception.io.zstd_codec import zstd


@dataclass(frozen=True)
class Outputs:
    """One frame through one model set: the class map (train ids), the instance map
    (Cityscapes instanceIds layout) with a score per value, the panoptic map; None for what
    the set's models do not produce."""

    class_map: npt.NDArray[np.uint8] | None
    instance_map: npt.NDArray[np.uint16] | None
    scores: Mapping[int, float] | None
    panoptic: npt.NDArray[np.uint16] | None


@dataclass(frozen=True)
class Prediction:
    """One frame through every model set, in set order; the header to stamp outputs with,
    (compare) a small RGB copy of the camera image and (``--write-bags``) the output messages."""

    stamp_ns: int
    frame_id: str
    outputs: tuple[Outputs, ...]
    thumbnail: npt.NDArray[np.uint8] | None = None
    # --write-bags: the first set's output messages (apps/output_messages.py), as replay writes them
    messages: tuple[tuple[str, str, bytes], ...] = ()


def pack(value: object) -> bytes:
    """``value`` pickled and zstd-compressed (level 1). Class maps and ground-truth images are
    mostly long runs: a 1280x720 frame's shrink 100- to 200-fold in about a millisecond, where
    every stage boundary (Arrow blocks, the object store) would otherwise copy megabytes."""
    return bytes(zstd.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), level=1))


def unpack(data: bytes) -> Any:
    """What :func:`pack` packed."""
    return pickle.loads(zstd.decompress(data))
