"""Semantic segmentation of image files: class maps in the Cityscapes convention, and overlays.

Behind `seg-perception segment`; what it writes is what `seg-perception eval` reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from seg_perception.errors import ImageError

if TYPE_CHECKING:
    import numpy.typing as npt

    from seg_perception.pipeline.semantic import SemanticSegmenter


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, each folder replaced by the ``*.png`` then the ``*.jpg`` files under it
    (searched recursively, each sorted by path)."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.png")) + sorted(path.rglob("*.jpg")) if path.is_dir() else [path]
    return files


def segment_images(
    segmenter: SemanticSegmenter,
    paths: Iterable[str | Path],
    out: Path,
    alpha: float,
    fmt: str = "seg_perception",
) -> list[Path]:
    """Segment the images of ``paths`` (see :func:`image_files`) one by one into ``out``
    (created); returns the images segmented. A ``_leftImg8bit`` suffix is dropped from the
    stem, so the names match the ground truth of a Cityscapes layout.

    ``fmt`` "seg_perception": ``<stem>_classes.png`` (Cityscapes label ids) and
    ``<stem>_overlay.png`` (``alpha`` blend). "cityscapes": the official semantic result
    ``<stem>_pred_labelIds.png`` and nothing else (the official script takes every
    ``<stem>*.png`` below its results folder for a prediction, so no overlays beside them).
    """
    import cv2
    import numpy as np

    from seg_perception.io.image import ColorOrder, DecodedImage
    from seg_perception.metrics.cityscapes.results import write_semantic_result

    to_label_id = segmenter.labels.train_to_label_id()
    out.mkdir(parents=True, exist_ok=True)
    images = image_files(paths)
    for path in images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ImageError(f"cannot read image {path}")
        # IMREAD_COLOR always reads 8-bit BGR (the stubs type it as any depth).
        image = DecodedImage(cast("npt.NDArray[np.uint8]", bgr), ColorOrder.BGR)
        result = segmenter.segment([image])[0]
        stem = path.stem.removesuffix("_leftImg8bit")
        if fmt == "cityscapes":
            write_semantic_result(out, stem, to_label_id[result.class_map])
            continue
        cv2.imwrite(str(out / f"{stem}_classes.png"), to_label_id[result.class_map])
        overlay = segmenter.overlay(image, result, alpha)
        # The overlay is RGB; OpenCV writes BGR.
        cv2.imwrite(str(out / f"{stem}_overlay.png"), np.ascontiguousarray(overlay[:, :, ::-1]))
    return images
