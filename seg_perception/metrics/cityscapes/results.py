"""The official Cityscapes result-file conventions: finding, reading and writing them.

What ``cityscapesscripts`` 2.3.0 reads (and the benchmark server accepts), per ground-truth
frame ``<city>_<seq>_<frame>`` (the *stem*):

* **semantic** - one single-channel PNG of *label ids* (not train ids) whose name starts with
  the stem (``evalPixelLevelSemanticLabeling`` searches ``<stem>*.png`` below the results
  folder and refuses a frame with none or several);
* **instance** - one ``<stem>*.txt`` (``evalInstanceLevelSemanticLabeling``) listing a line
  ``<mask PNG> <label id> <confidence>`` per predicted instance; the mask path is relative to
  the txt's folder and must lie below the results folder; a mask pixel is inside where the
  PNG, converted to 8-bit grey as PIL's ``convert("L")`` does, is not 0; masks may overlap;
  a mask listed twice counts once, with its last line;
* **panoptic** - the COCO panoptic pair ``<name>.json`` + PNG folder ``<name>/``
  (``evalPanopticSemanticLabeling``; default ``cityscapes_panoptic_val``): per image an
  annotation ``{"image_id": <stem>, "file_name": <png>, "segments_info": [{"id",
  "category_id"}, ...]}``, the PNG's segment id being ``R + 256 G + 256^2 B``; areas are
  counted from the PNG, and a segment in the PNG but not in the json (or the reverse) or an
  unknown ``category_id`` is an error, as there.

:class:`ResultsWriter` writes our predictions in these conventions, one sub-folder per task
(``semantic/``, ``instance/``, ``panoptic/``), so that each can be given unchanged to the
official script as its ``CITYSCAPES_RESULTS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from seg_perception.errors import ConfigError
from seg_perception.labels import LabelSet
from seg_perception.metrics.cityscapes.common import VOID, IntArray, Segments, panoptic_categories
from seg_perception.metrics.cityscapes.files import (
    InstanceScores,
    id_to_rgb,
    write_instance_predictions,
)
from seg_perception.metrics.cityscapes.panoptic import pred_panoptic_segments

if TYPE_CHECKING:
    from seg_perception.pipeline.perception import FrameResult

#: name of the semantic result of a frame written by :class:`ResultsWriter` / segment
SEMANTIC_SUFFIX = "_pred_labelIds.png"
#: the json + folder name the official panoptic script looks for by default
PANOPTIC_NAME = "cityscapes_panoptic_val"


@dataclass
class PanopticResult:
    """A COCO panoptic json, its PNG folder and its annotations by ``image_id``."""

    json_path: Path
    folder: Path
    annotations: dict[str, dict[str, Any]]


@dataclass
class OfficialResults:
    """The official result files found below a folder, by ground-truth stem."""

    semantic: dict[str, Path] = field(default_factory=dict)
    instance: dict[str, Path] = field(default_factory=dict)
    panoptic: PanopticResult | None = None


def _stem_index(stems: Iterable[str]) -> tuple[set[str], list[int]]:
    s = set(stems)
    return s, sorted({len(x) for x in s})


def _owner(name: str, stems: set[str], lengths: list[int]) -> str | None:
    """The stem ``name`` starts with (the official ``fnmatch(<stem>*.ext)``), or None."""
    for n in lengths:
        if name[:n] in stems:
            return name[:n]
    return None


def _is_panoptic_json(path: Path) -> dict[str, Any] | None:
    """The parsed COCO panoptic json at ``path``, or None when it is another json."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    anns = doc.get("annotations") if isinstance(doc, dict) else None
    if isinstance(anns, list) and anns and all(isinstance(a, dict) and "segments_info" in a for a in anns):
        return dict(doc)
    return None


def find_panoptic_jsons(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every COCO panoptic json below ``root`` (sorted by path), parsed."""
    found = []
    for p in sorted(root.rglob("*.json")):
        doc = _is_panoptic_json(p)
        if doc is not None:
            found.append((p, doc))
    return found


def find_official_results(root: str | Path, stems: Iterable[str]) -> OfficialResults:
    """The result files of each convention below ``root`` for the ground-truth ``stems``.

    Files named after no stem are ignored, as the official scripts ignore them. PNGs of a
    panoptic folder and the masks listed in instance txt files are not semantic results (the
    official scripts get one task's folder each; ``eval`` can read all three from one).
    ConfigError on several results of one kind for a stem, or several panoptic jsons.
    """
    root = Path(root)
    stem_set, lengths = _stem_index(stems)
    out = OfficialResults()
    jsons = find_panoptic_jsons(root)
    if len(jsons) > 1:
        raise ConfigError(f"several COCO panoptic json files below {root}: {jsons[0][0]} and {jsons[1][0]}")
    excluded: set[Path] = set()
    if jsons:
        path, doc = jsons[0]
        folder = path.with_suffix("")
        out.panoptic = PanopticResult(path, folder, {str(a.get("image_id")): a for a in doc["annotations"]})
        excluded |= {p.resolve() for p in folder.rglob("*.png")} if folder.is_dir() else set()
    for txt in sorted(root.rglob("*.txt")):
        stem = _owner(txt.name, stem_set, lengths)
        if stem is None:
            continue
        if stem in out.instance:
            raise ConfigError(f"found several instance results for {stem}: {out.instance[stem]} and {txt}")
        out.instance[stem] = txt
        excluded |= {mask.resolve() for mask, _, _ in read_instance_txt(txt, root)}
    for png in sorted(root.rglob("*.png")):
        stem = _owner(png.name, stem_set, lengths)
        if stem is None or png.resolve() in excluded:
            continue
        if stem in out.semantic:
            raise ConfigError(f"found several semantic results for {stem}: {out.semantic[stem]} and {png}")
        out.semantic[stem] = png
    return out


def read_instance_txt(txt: str | Path, root: str | Path) -> list[tuple[Path, int, float]]:
    """``(mask path, label id, confidence)`` of each line of an official instance txt, in
    file order; a mask listed twice keeps its first place and its last line's values.
    ConfigError on a malformed line or a mask outside ``root``."""
    txt, root = Path(txt), Path(root).resolve()
    entries: dict[Path, tuple[int, float]] = {}
    try:
        lines = txt.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read instance results {txt}: {err}") from err
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(" ")
        where = f"{txt}:{n}"
        if len(parts) != 3:
            raise ConfigError(f"{where}: expected '<mask png> <label id> <confidence>', got {line!r}")
        if Path(parts[0]).is_absolute():
            raise ConfigError(f"{where}: the mask path must be relative to the txt file, got {parts[0]!r}")
        mask = (txt.parent / parts[0]).resolve()
        if not mask.is_relative_to(root):
            raise ConfigError(f"{where}: mask {mask} lies outside the results folder {root}")
        try:
            label, conf = int(float(parts[1])), float(parts[2])
        except ValueError as err:
            raise ConfigError(f"{where}: label id and confidence must be numbers, got {line!r}") from err
        entries[mask] = (label, conf)
    return [(mask, label, conf) for mask, (label, conf) in entries.items()]


def read_mask(path: str | Path) -> npt.NDArray[np.bool_]:
    """An instance mask PNG as ``PIL.Image.open(path).convert("L") != 0`` (the official reading):
    grey or 16-bit: not 0; colour: PIL's integer luminance not 0 (alpha ignored)."""
    p = Path(path)
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
    if arr is None:
        raise ConfigError(f"cannot read instance mask {p}")
    if arr.ndim == 2:
        return np.asarray(arr != 0)
    rgb = arr[:, :, 2::-1].astype(np.uint32)  # OpenCV reads BGR(A)
    if arr.dtype != np.uint8:
        rgb >>= 8  # PIL reads 16-bit colour PNGs as 8-bit
    lum = (rgb[:, :, 0] * 19595 + rgb[:, :, 1] * 38470 + rgb[:, :, 2] * 7471 + 0x8000) >> 16
    return np.asarray(lum != 0)


def read_panoptic_png(path: str | Path) -> IntArray:
    """A COCO panoptic PNG as (H, W) segment ids ``R + 256 G + 256^2 B``."""
    p = Path(path)
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
    if arr is None:
        raise ConfigError(f"cannot read panoptic PNG {p}")
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint8:
        raise ConfigError(f"panoptic PNG {p} must be 8-bit RGB, got shape {arr.shape} {arr.dtype}")
    bgr = arr[:, :, :3].astype(np.int64)
    return np.asarray(bgr[:, :, 2] + 256 * bgr[:, :, 1] + 65536 * bgr[:, :, 0])


def read_panoptic_annotation(
    result: PanopticResult, stem: str, label_set: LabelSet | None = None
) -> tuple[IntArray, Segments]:
    """(segment id image, segments) of ``stem`` in a COCO panoptic result, checked as the
    official script checks it; areas come from the PNG, iscrowd is 0 (not used for predictions)."""
    ann = result.annotations.get(stem)
    if ann is None:
        raise ConfigError(f"no prediction for the image with id {stem} in {result.json_path}")
    pan = read_panoptic_png(result.folder / str(ann.get("file_name", "")))
    try:
        info = {int(s["id"]): int(s["category_id"]) for s in ann["segments_info"]}
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{result.json_path}: segments_info of {stem} needs integer id and category_id") from err
    known = {c["id"] for c in panoptic_categories(label_set)}
    vals, area = np.unique(pan, return_counts=True)
    in_png = {int(v) for v in vals if v != VOID}
    if VOID in info:
        raise ConfigError(f"{result.json_path}: image {stem} lists segment id 0, which is VOID")
    if in_png - set(info):
        raise ConfigError(f"in the image {stem} segment {min(in_png - set(info))} is in the PNG and not in the json")
    if set(info) - in_png:
        raise ConfigError(
            f"in the image {stem} segments {sorted(set(info) - in_png)} are in the json and not in the PNG"
        )
    bad = sorted({c for c in info.values() if c not in known})
    if bad:
        raise ConfigError(f"in the image {stem} category ids {bad} are unknown (not evaluated classes)")
    keep = vals != VOID
    ids = vals[keep].astype(np.int64)
    seg: Segments = {
        "id": ids,
        "category_id": np.array([info[int(i)] for i in ids], np.int64),
        "iscrowd": np.zeros(ids.size, np.int64),
        "area": area[keep].astype(np.int64),
    }
    return pan, seg


class ResultsWriter:
    """Writes predictions frame by frame in the official conventions under ``root``:
    ``semantic/<stem>_pred_labelIds.png`` (8-bit label ids), ``instance/<stem>.txt`` with
    ``instance/masks/<stem>_<value>.png``, ``panoptic/cityscapes_panoptic_val.json`` and
    ``panoptic/cityscapes_panoptic_val/<stem>_panoptic.png`` (the json on :meth:`close`).
    A stem must be ``<city>_<seq>_<frame>`` with no space and a city without ``_``."""

    def __init__(self, root: str | Path, label_set: LabelSet | None = None) -> None:
        self.root = Path(root)
        self.label_set = label_set
        self._panoptic: list[dict[str, Any]] = []
        self.frames = 0

    def write(
        self,
        stem: str,
        label_ids: npt.NDArray[np.integer[Any]] | None = None,
        instance_map: npt.NDArray[np.integer[Any]] | None = None,
        scores: InstanceScores | None = None,
        panoptic: npt.NDArray[np.integer[Any]] | None = None,
    ) -> None:
        """One frame: a label-id map, an instance map (``label_id*1000 + k``) with a score per
        value, our panoptic map (thing pixels ``label_id*1000 + k``, others the label id)."""
        if len(stem.split("_")) != 3 or " " in stem:
            raise ConfigError(f"result stem must be <city>_<seq>_<frame> without spaces, got {stem!r}")
        if label_ids is not None:
            write_semantic_result(self.root / "semantic", stem, label_ids)
        if instance_map is not None:
            write_instance_predictions(self.root / "instance", stem, instance_map, scores or {})
        if panoptic is not None:
            folder = self.root / "panoptic" / PANOPTIC_NAME
            folder.mkdir(parents=True, exist_ok=True)
            pan, seg = pred_panoptic_segments(panoptic, self.label_set)
            png = f"{stem}_panoptic.png"
            if not cv2.imwrite(str(folder / png), cv2.cvtColor(id_to_rgb(pan), cv2.COLOR_RGB2BGR)):
                raise ConfigError(f"cannot write {folder / png}")
            info = [{"id": int(i), "category_id": int(c)} for i, c in zip(seg["id"], seg["category_id"])]
            self._panoptic.append({"image_id": stem, "file_name": png, "segments_info": info})
        self.frames += 1

    def write_result(self, stem: str, result: FrameResult) -> None:
        """One frame of the perception core (:class:`~seg_perception.pipeline.perception.FrameResult`):
        its class map as label ids, its instance map with the scores, its panoptic map."""
        if self.label_set is None:
            raise ConfigError("ResultsWriter needs the label set to write class maps as label ids")
        sem, inst = result.semantic, result.instance
        self.write(
            stem,
            label_ids=self.label_set.train_to_label_id()[sem.class_map] if sem is not None else None,
            instance_map=inst.instance_map if inst is not None else None,
            scores={r.value: r.score for r in inst.instances} if inst is not None else None,
            panoptic=result.panoptic,
        )

    def close(self) -> None:
        """Write the panoptic json (when any frame had a panoptic map)."""
        if self._panoptic:
            doc = {"annotations": self._panoptic, "categories": panoptic_categories(self.label_set)}
            (self.root / "panoptic" / f"{PANOPTIC_NAME}.json").write_text(json.dumps(doc, indent=1))


def write_semantic_result(out_dir: str | Path, stem: str, label_ids: npt.NDArray[np.integer[Any]]) -> Path:
    """Write ``out_dir/<stem>_pred_labelIds.png``: an 8-bit PNG of Cityscapes *label ids*."""
    arr = np.asarray(label_ids)
    if arr.ndim != 2 or (arr.size and (arr.min() < 0 or arr.max() > 255)):
        raise ConfigError(f"a semantic result must be a 2-D map of label ids 0..255, got shape {arr.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}{SEMANTIC_SUFFIX}"
    if not cv2.imwrite(str(path), arr.astype(np.uint8)):
        raise ConfigError(f"cannot write {path}")
    return path
