"""Writers of generated frames: the Cityscapes folder layout and rosbag2 drive bags.

:func:`write_cityscapes_and_drive_bag` writes both from one pass over the frames, so a drive is
rendered once; its files are identical to those of :func:`write_cityscapes` followed by
:func:`write_drive_bag` on the same frames.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypedDict

import cv2
import numpy as np
from rosbags.rosbag2 import Writer

from seg_perception.io.bags import (
    COMPRESSED,
    GT_CONDITION,
    GT_INSTANCE_IDS,
    GT_LABEL_IDS,
    IMAGE,
    STORAGES,
    STRING,
    TYPESTORE,
    compressed_message,
    image_message,
)
from seg_perception.synthetic.frames import SyntheticFrame
from seg_perception.synthetic.label_ids import colorize_label_ids

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11; Humble runs 3.10

BAG_METADATA_KEY = "seg_perception.synthetic"  # custom data of a drive bag: {"frames": n, "fps": fps}
DEFAULT_START_NS = 1_700_000_000_000_000_000


def _stem(city: str, index: int) -> str:
    return f"{city}_000000_{int(index):06d}"


class CityscapesWriter:
    """Writes frames one by one in the Cityscapes layout under ``out_dir``; :meth:`close`
    writes ``conditions.json`` (merged with an existing file). See :func:`write_cityscapes`."""

    def __init__(self, out_dir: str | Path, city: str = "synth", split: str = "val") -> None:
        out = Path(out_dir)
        self.city = city
        self.image_dir = out / "leftImg8bit" / split / city
        self.gt_dir = out / "gtFine" / split / city
        self.image_dir.mkdir(parents=True, exist_ok=True)
        self.gt_dir.mkdir(parents=True, exist_ok=True)
        self.conditions_path = out / "conditions.json"
        self.conditions: dict[str, str] = {}
        if self.conditions_path.is_file():
            try:
                self.conditions = dict(json.loads(self.conditions_path.read_text()))
            except (ValueError, TypeError):
                self.conditions = {}

    def write(self, frame: SyntheticFrame) -> Path:
        """Write one frame's image and ground truth; returns the image path (OSError on failure)."""
        stem = _stem(self.city, frame.index)
        image_path = self.image_dir / f"{stem}_leftImg8bit.png"
        colours = colorize_label_ids(frame.label_ids)
        writes = [
            (image_path, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)),
            (self.gt_dir / f"{stem}_gtFine_labelIds.png", np.ascontiguousarray(frame.label_ids, np.uint8)),
            (self.gt_dir / f"{stem}_gtFine_instanceIds.png", np.ascontiguousarray(frame.instance_ids, np.uint16)),
            (self.gt_dir / f"{stem}_gtFine_color.png", cv2.cvtColor(colours, cv2.COLOR_RGB2BGR)),
        ]
        for path, pixels in writes:
            if not cv2.imwrite(str(path), pixels):
                raise OSError(f"cannot write {path}")
        self.conditions[stem] = frame.condition
        return image_path

    def close(self) -> None:
        """Write ``conditions.json`` (sorted by stem), atomically."""
        tmp = self.conditions_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dict(sorted(self.conditions.items())), indent=1) + "\n")
        tmp.replace(self.conditions_path)


def write_cityscapes(
    out_dir: str | Path, frames: Iterable[SyntheticFrame], city: str = "synth", split: str = "val"
) -> list[Path]:
    """Write frames in the Cityscapes layout; returns the image paths.

    ``out_dir/leftImg8bit/<split>/<city>/<city>_000000_<index>_leftImg8bit.png`` plus
    ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (8-bit), ``..._gtFine_instanceIds.png``
    (16-bit) and ``..._gtFine_color.png``; ``out_dir/conditions.json`` maps each frame stem to
    its condition (merged with an existing file).
    """
    writer = CityscapesWriter(out_dir, city, split)
    paths = [writer.write(frame) for frame in frames]
    writer.close()
    return paths


class DriveBagWriter:
    """A context manager writing frames one by one to a new rosbag2 drive bag; see :func:`write_drive_bag`.

    On a clean exit the bag's custom data ``seg_perception.synthetic`` records the frame count
    and ``fps``; on an exception the bag is aborted, as rosbags does."""

    def __init__(
        self,
        path: str | Path,
        fps: float = 10.0,
        storage: str = "mcap",  # rosbag2's default storage since Iron
        camera: str = "/camera",
        compressed: str = "",
        frame_id: str = "camera_front",
        start_ns: int = DEFAULT_START_NS,
    ) -> None:
        self.path = Path(path)
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.fps, self.camera, self.compressed = fps, camera, compressed
        self.frame_id, self.start_ns = frame_id, start_ns
        self.frames = 0
        self._writer = Writer(self.path, version=8, storage_plugin=STORAGES[storage])

    def __enter__(self) -> DriveBagWriter:
        writer = self._writer.__enter__()
        try:
            if self.compressed:
                topic, msgtype = f"{self.camera}/image_raw/compressed", COMPRESSED
            else:
                topic, msgtype = f"{self.camera}/image_raw", IMAGE
            self._camera = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self._label_ids = writer.add_connection(f"{self.camera}/{GT_LABEL_IDS}", IMAGE, typestore=TYPESTORE)
            self._instance_ids = writer.add_connection(f"{self.camera}/{GT_INSTANCE_IDS}", IMAGE, typestore=TYPESTORE)
            self._condition = writer.add_connection(f"{self.camera}/{GT_CONDITION}", STRING, typestore=TYPESTORE)
        except BaseException:
            self._writer.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, frame: SyntheticFrame) -> None:
        """Append one frame: the camera image and the ground truth, all stamped ``start_ns + i / fps``."""
        writer, frame_id = self._writer, self.frame_id
        stamp = self.start_ns + round(self.frames * 1e9 / self.fps)
        if self.compressed:
            message = compressed_message(frame.image, self.compressed, stamp, frame_id)
            writer.write(self._camera, stamp, TYPESTORE.serialize_cdr(message, COMPRESSED))
        else:
            message = image_message(frame.image, "rgb8", stamp, frame_id)
            writer.write(self._camera, stamp, TYPESTORE.serialize_cdr(message, IMAGE))
        for connection, pixels, encoding in (
            (self._label_ids, frame.label_ids, "mono8"),
            (self._instance_ids, frame.instance_ids, "mono16"),
        ):
            message = image_message(pixels, encoding, stamp, frame_id)
            writer.write(connection, stamp, TYPESTORE.serialize_cdr(message, IMAGE))
        condition = TYPESTORE.types[STRING](data=frame.condition)
        writer.write(self._condition, stamp, TYPESTORE.serialize_cdr(condition, STRING))
        self.frames += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            self._writer.set_custom_data(BAG_METADATA_KEY, json.dumps({"frames": self.frames, "fps": self.fps}))
        self._writer.__exit__(exc_type, exc, traceback)


class DriveBagOptions(TypedDict, total=False):
    """:class:`DriveBagWriter`'s keyword options, passed through by the write functions."""

    fps: float
    storage: str
    camera: str
    compressed: str
    frame_id: str
    start_ns: int


def write_drive_bag(path: str | Path, frames: Iterable[SyntheticFrame], **options: Unpack[DriveBagOptions]) -> Path:
    """Write a generated drive: ``<camera>/image_raw`` (rgb8, or ``image_raw/compressed``
    when ``compressed`` is "jpeg"/"png") plus ground-truth topics, stamped at ``fps``
    (options and defaults: :class:`DriveBagWriter`)."""
    with DriveBagWriter(path, **options) as bag:
        for frame in frames:
            bag.write(frame)
    return bag.path


def write_cityscapes_and_drive_bag(
    out_dir: str | Path,
    bag_path: str | Path,
    frames: Iterable[SyntheticFrame],
    city: str = "synth",
    split: str = "val",
    **options: Unpack[DriveBagOptions],
) -> tuple[list[Path], Path]:
    """Write each frame to the Cityscapes layout and to a drive bag as it comes (frames are
    rendered once); returns (image paths, bag path). The files are those of
    :func:`write_cityscapes` and :func:`write_drive_bag` with the same arguments."""
    cityscapes = CityscapesWriter(out_dir, city, split)
    paths = []
    with DriveBagWriter(bag_path, **options) as bag:
        for frame in frames:
            paths.append(cityscapes.write(frame))
            bag.write(frame)
    cityscapes.close()
    return paths, bag.path
