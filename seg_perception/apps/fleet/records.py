"""What the model stage hands on: plain arrays, so the score stage and the driver unpickle it
without importing torch (a score worker that imports it spends seconds starting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


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
