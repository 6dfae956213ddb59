"""Reading and writing the official Cityscapes file formats, and the input checks of the
evaluators (which take arrays or PNG paths alike).

* Ground truth and our predictions are single-channel PNGs (:func:`read_png`): 8-bit label
  ids, 16-bit ``instanceIds`` / instance maps / panoptic maps.
* Instance scores are ``{map value: score}`` (:func:`parse_scores`), as in our
  ``<stem>_instances.json``.
* :func:`write_instance_predictions` writes the input of ``evalInstanceLevelSemanticLabeling``
  (a txt file per image listing mask PNGs with label id and score).
* :func:`write_panoptic_json` writes the COCO panoptic json + PNG folder that
  ``evalPanopticSemanticLabeling`` reads, for the ground truth as ``createPanopticImgs.py``
  writes it or for predictions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import VOID, IntArray, Segments, panoptic_categories

#: an integer image, or the path of a single-channel PNG holding one
ArrayOrPath: TypeAlias = npt.NDArray[np.integer[Any]] | str | Path
#: ``{instance map value: score}`` (keys may be strings, as read from JSON) or ``(value, score)`` pairs
InstanceScores: TypeAlias = Mapping[int, float] | Mapping[str, float] | Iterable[tuple[int, float]]


# Ground truth of a Cityscapes layout (gtFine/<split>/<city>/<stem>_gtFine_*.png).
GT_SUFFIX = "_gtFine_labelIds.png"
GT_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def files_by_stem(root: Path, suffix: str, what: str) -> dict[str, Path]:
    """``{stem: path}`` of the files named ``<stem><suffix>`` below ``root``, sorted by path;
    ConfigError when two share a stem."""
    found: dict[str, Path] = {}
    for p in sorted(root.rglob(f"*{suffix}")):
        stem = p.name[: -len(suffix)]
        if stem in found:
            raise ConfigError(f"two {what} files for {stem}: {found[stem]} and {p}")
        found[stem] = p
    return found


def read_png(path: str | Path, what: str = "image") -> npt.NDArray[np.integer[Any]]:
    """Read a single-channel PNG unchanged (8 or 16 bit); ConfigError if missing or not 2-D."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ConfigError(f"cannot read {what} {p}")
    if arr.ndim != 2:
        raise ConfigError(f"{what} {p} must be single-channel, got shape {arr.shape}")
    return np.asarray(arr)


def as_array(x: ArrayOrPath, what: str) -> npt.NDArray[np.integer[Any]]:
    """``x`` as a 2-D integer array (read with :func:`read_png` if a path); ConfigError otherwise."""
    if isinstance(x, (str, Path)):
        return read_png(x, what)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ConfigError(f"{what} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "ui":
        raise ConfigError(f"{what} must be an integer array, got {arr.dtype}")
    return arr


def check_same_shape(a: npt.NDArray[Any], b: npt.NDArray[Any], what_a: str, what_b: str) -> None:
    """ConfigError naming both images when their (H, W) differ."""
    if a.shape != b.shape:
        raise ConfigError(f"{what_a} {a.shape[1]}x{a.shape[0]} and {what_b} {b.shape[1]}x{b.shape[0]} differ in size")


def parse_scores(scores: InstanceScores) -> dict[int, float]:
    """Instance scores as ``{instance map value: score}``; later entries win. ConfigError unless
    every value is ``label_id*1000 + k`` (1000..65535) and every score finite."""
    items = scores.items() if isinstance(scores, Mapping) else scores
    out: dict[int, float] = {}
    try:
        for value, score in items:
            v = int(value)
            s = float(score)
            if v < 1000 or v > 65535:
                raise ConfigError(f"instance value {v} is not label_id*1000+k (1000..65535)")
            if not math.isfinite(s):
                raise ConfigError(f"instance {v} has a non-finite score {score!r}")
            out[v] = s
    except (TypeError, ValueError) as err:
        raise ConfigError(f"instance scores must be (value, score) pairs: {err}") from err
    return out


def write_instance_predictions(
    out_dir: str | Path, stem: str, instance_map: npt.NDArray[np.integer[Any]], scores: InstanceScores
) -> Path:
    """Write one frame in the official instance-level input format; returns the txt path.

    ``out_dir/<stem>.txt`` has one line ``masks/<stem>_<value>.png <label id> <score>`` per
    scored value of ``instance_map`` (``label_id*1000 + k``); each mask PNG is 8-bit, 255
    inside the instance. Scores are written with ``repr`` so they read back bit-exactly.
    Paths must not contain spaces (the official reader splits on them).
    """
    out = Path(out_dir)
    if " " in stem:
        raise ConfigError(f"frame stem {stem!r} contains a space; the official reader splits on spaces")
    (out / "masks").mkdir(parents=True, exist_ok=True)
    pm = np.asarray(instance_map)
    lines = []
    for value, score in parse_scores(scores).items():
        rel = f"masks/{stem}_{value}.png"
        if not cv2.imwrite(str(out / rel), np.where(pm == value, 255, 0).astype(np.uint8)):
            raise ConfigError(f"cannot write {out / rel}")
        lines.append(f"{rel} {value // 1000} {float(score)!r}\n")
    txt = out / f"{stem}.txt"
    txt.write_text("".join(lines))
    return txt


def id_to_rgb(ids: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.uint8]:
    """(H, W) segment ids -> (H, W, 3) uint8 RGB (R + 256 G + 256^2 B), the COCO panoptic PNG."""
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)


def _bbox(pan: IntArray, ids: IntArray) -> IntArray:
    """(N, 4) [x, y, w, h] of each segment id (``pan`` holds only VOID and ``ids``)."""
    H, W = pan.shape
    flat = pan.ravel()
    on = np.flatnonzero(flat != VOID)
    i = np.searchsorted(ids, flat[on])
    ys, xs = np.divmod(on, W)
    n = ids.size
    x0, y0 = np.full(n, W, np.int64), np.full(n, H, np.int64)
    x1, y1 = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    np.minimum.at(x0, i, xs)
    np.minimum.at(y0, i, ys)
    np.maximum.at(x1, i, xs)
    np.maximum.at(y1, i, ys)
    return np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], 1)


def write_panoptic_json(
    out_json: str | Path,
    frames: Iterable[tuple[str, IntArray, Segments]],
    label_set: LabelSet | None = None,
    ground_truth: bool = False,
) -> Path:
    """Write the COCO panoptic format the official script reads: ``out_json`` plus the PNG
    folder ``out_json`` without ``.json``.

    ``frames``: ``(image_id, segment id image, segments)`` from
    :func:`~seg_perception.metrics.cityscapes.panoptic.gt_panoptic_segments` or
    :func:`~seg_perception.metrics.cityscapes.panoptic.pred_panoptic_segments`; ``image_id``
    is the frame stem ``<city>_<seq>_<frame>``. With ``ground_truth=True`` the json and PNG
    names are those of ``createPanopticImgs.py`` (``<stem>_gtFine_panoptic.png``, an
    ``images`` list, area/bbox/iscrowd per segment); otherwise ``<stem>_panoptic.png`` with
    ``id`` and ``category_id`` per segment.
    """
    out_json = Path(out_json)
    folder = out_json.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, pan, seg in frames:
        if ground_truth:
            png = f"{image_id}_gtFine_panoptic.png"
            images.append(
                {
                    "id": image_id,
                    "width": int(pan.shape[1]),
                    "height": int(pan.shape[0]),
                    "file_name": f"{image_id}_gtFine_leftImg8bit.png",
                }
            )
            bbox = _bbox(pan, seg["id"])
            info = [
                {"id": int(i), "category_id": int(c), "area": int(a), "bbox": [int(v) for v in b], "iscrowd": int(cr)}
                for i, c, a, b, cr in zip(seg["id"], seg["category_id"], seg["area"], bbox, seg["iscrowd"])
            ]
        else:
            png = f"{image_id}_panoptic.png"
            info = [{"id": int(i), "category_id": int(c)} for i, c in zip(seg["id"], seg["category_id"])]
        if not cv2.imwrite(str(folder / png), cv2.cvtColor(id_to_rgb(pan), cv2.COLOR_RGB2BGR)):
            raise ConfigError(f"cannot write {folder / png}")
        annotations.append({"image_id": image_id, "file_name": png, "segments_info": info})
    doc: dict[str, Any] = {"annotations": annotations, "categories": panoptic_categories(label_set)}
    if ground_truth:
        doc["images"] = images
    out_json.write_text(json.dumps(doc, sort_keys=True, indent=4))
    return out_json
