"""Rosbag2 bags read from their storage files alone, without ``metadata.yaml``.

rosbag2 writes ``metadata.yaml`` when the recorder closes the bag, so a recorder that is killed
(power cut, OOM, SIGKILL) leaves a folder of split files ``<name>_0.mcap``, ``<name>_1.mcap``, ...
and nothing else; ``ros2 bag reindex`` exists to rebuild the file. The storage files describe
themselves (MCAP: schemas, channels, summary; sqlite3: ``topics`` and ``messages`` tables), so
this module does what reindex does, in memory and without writing into the recording:

- files in split order (by name, numbers compared as numbers: ``_2`` before ``_10``);
- connections merged across files by topic and type, message counts summed;
- zstd file compression (``.mcap.zstd`` / ``.db3.zstd``) recognised by the suffix, zstd message
  compression per message by its frame magic (a CDR payload starts with a zero byte, a zstd
  frame with ``28 b5 2f fd``), so neither needs the metadata that recorded the mode;
- an MCAP file cut off mid-write (no summary, no footer) is read record by record up to its last
  complete record, with a warning; what was never completely written is lost, as with reindex.

:class:`BagReader` is rosbags' ``Reader`` with this storage behind it where ``metadata.yaml`` is
missing, so every caller keeps rosbags' API (connections, messages, start_time, ...).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.metadata import ReaderMetadata
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from seg_perception.errors import BagError
from seg_perception.io.zstd_codec import zstd

if TYPE_CHECKING:
    from collections.abc import Collection, Generator

    from rosbags.interfaces import Connection

log = logging.getLogger(__name__)

SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}  # storage file suffix -> rosbag2 storage id
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NO_MESSAGES = ReaderMetadata(0, 2**63 - 1, 0, 0, None, None, None, None)


class _Storage(Protocol):
    """What is used of one storage file's reader (rosbags' McapReader / Sqlite3Reader)."""

    connections: list[Connection]
    metadata: ReaderMetadata

    def close(self) -> None: ...

    def messages(
        self, connections: Collection[Connection], start: int | None = None, stop: int | None = None
    ) -> Generator[tuple[Connection, int, bytes], None, None]: ...


def storage_id(path: Path) -> str:
    """``mcap`` / ``sqlite3`` for a storage file (``.zstd`` file compression allowed), else ``""``."""
    return SUFFIXES.get(Path(path.name.removesuffix(".zstd")).suffix, "")


def _split_order(path: Path) -> list[str | int]:
    # Alternating text and number parts, numbers as ints: foo_2.mcap sorts before foo_10.mcap.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def storage_files(path: Path) -> tuple[list[Path], str]:
    """(storage files in split order, storage id) of a bag folder without metadata.yaml, or of
    one storage file. BagError, naming ``ros2 bag reindex``, where there is nothing to read."""
    if path.is_file():
        if not storage_id(path):
            raise BagError(f"{path} is not a rosbag2 storage file (.mcap, .db3, optionally .zstd compressed)")
        return [path], storage_id(path)
    files = sorted((p for p in path.iterdir() if p.is_file() and storage_id(p)), key=_split_order)
    if not files:
        raise BagError(
            f"bag folder {path} has no metadata.yaml and no storage files (.mcap, .db3) to rebuild it from; "
            f"if the files are elsewhere, gather them and run `ros2 bag reindex {path}`"
        )
    kinds = {storage_id(p) for p in files}
    if len(kinds) > 1:
        raise BagError(
            f"bag folder {path} has no metadata.yaml and mixes storages {sorted(kinds)}: one recording is one "
            f"storage; move the other files out or run `ros2 bag reindex {path}` with the right storage"
        )
    return files, kinds.pop()


class StorageFiles:
    """rosbags' reader protocol over the storage files of a bag without metadata.yaml."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files, self.storage_identifier = storage_files(path)
        self.connections: list[Connection] = []
        self.metadata = _NO_MESSAGES
        self.storages: list[_Storage] = []
        self.truncated: list[str] = []  # one line per file read only up to a damaged end
        self._stack: ExitStack | None = None

    def open(self) -> None:
        self.storages, self.truncated = [], []
        stack = ExitStack()
        try:
            scratch: Path | None = None
            for file in self.files:
                if file.suffix == ".zstd":
                    if scratch is None:
                        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seg_perception_bag_")))
                    file = _decompress(file, scratch / file.name.removesuffix(".zstd"))
                storage = self._open_file(file)
                stack.callback(storage.close)
                self.storages.append(storage)
        except BaseException:
            self.storages.clear()
            stack.close()
            raise
        self._stack = stack
        self._merge()

    def _open_file(self, file: Path) -> _Storage:
        storage: _Storage
        if self.storage_identifier == "sqlite3":
            sqlite = Sqlite3Reader(file)
            try:
                sqlite.open()
            except ReaderError as err:
                raise BagError(f"cannot read {file.name} of bag {self.path}: {err}") from err
            return sqlite
        mcap = McapReader(file)
        try:
            mcap.open()
            storage = mcap
        except ReaderError as err:
            # rosbags needs the summary and footer; a file cut off mid-write has neither.
            try:
                from seg_perception.io.mcap_partial import PartialMcapReader
            except ImportError as missing:  # only this recovery needs the mcap package
                raise BagError(
                    f"{file.name} of bag {self.path} is not a finished MCAP file ({err}); reading what it holds "
                    f"needs `pip install mcap==1.6.0` ({missing}), or rebuild the bag with `ros2 bag reindex`"
                ) from err
            partial = PartialMcapReader(file)
            partial.open()  # BagError if not even the start is MCAP
            line = (
                f"{file.name} is not a finished MCAP file ({err}; recorder killed mid-write?): read its "
                f"{partial.metadata.message_count} complete messages, up to byte {partial.readable_bytes} of "
                f"{file.stat().st_size} ({partial.damage or 'no damaged record found'})"
            )
            log.warning("bag %s: %s", self.path, line)
            self.truncated.append(line)
            storage = partial
        return storage

    def _merge(self) -> None:
        merged: dict[tuple[str, str], Connection] = {}
        for storage in self.storages:
            for conn in storage.connections:
                key = (conn.topic, conn.msgtype)
                have = merged.get(key)
                if have is None:
                    merged[key] = conn._replace(id=len(merged) + 1, owner=self)
                else:
                    msgdef = have.msgdef if have.msgdef.data else conn.msgdef
                    merged[key] = have._replace(msgcount=have.msgcount + conn.msgcount, msgdef=msgdef)
        self.connections = list(merged.values())
        metas = [s.metadata for s in self.storages if s.metadata.message_count]
        if not metas:
            self.metadata = _NO_MESSAGES
            return
        start, end = min(m.start_time for m in metas), max(m.end_time for m in metas)
        file_compressed = any(f.suffix == ".zstd" for f in self.files)
        self.metadata = ReaderMetadata(
            duration=end - start,
            start_time=start,
            end_time=end,
            message_count=sum(m.message_count for m in metas),
            compression_format="zstd" if file_compressed else None,
            compression_mode="file" if file_compressed else None,
            ros_distro=None,
            custom=None,
        )

    def close(self) -> None:
        stack, self._stack = self._stack, None
        self.connections = []
        self.storages = []
        self.metadata = _NO_MESSAGES
        if stack is not None:
            stack.close()

    def messages(
        self, connections: Collection[Connection], start: int | None = None, stop: int | None = None
    ) -> Generator[tuple[Connection, int, bytes], None, None]:
        """Messages of ``connections`` file after file (split files follow each other in time)."""
        wanted = {(c.topic, c.msgtype): c for c in connections}
        for storage in self.storages:
            mine = {c.id: wanted[(c.topic, c.msgtype)] for c in storage.connections if (c.topic, c.msgtype) in wanted}
            if not mine:
                continue
            for conn, timestamp, data in storage.messages(
                [c for c in storage.connections if c.id in mine], start, stop
            ):
                if data[:4] == ZSTD_MAGIC:
                    data = zstd.decompress(data)
                yield mine[conn.id], timestamp, data


def _decompress(src: Path, dst: Path) -> Path:
    try:
        with src.open("rb") as raw, zstd.open(raw, "rb") as infile, dst.open("wb") as outfile:
            shutil.copyfileobj(infile, outfile)
    except (OSError, zstd.ZstdError) as err:
        raise BagError(f"cannot decompress {src}: {err}") from err
    return dst


class BagReader(Reader):
    """rosbags' Reader; a folder without metadata.yaml, a bare storage file and a ``.zstd``
    compressed one are read from their storage files (:class:`StorageFiles`)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir() and (path / "metadata.yaml").exists():
            super().__init__(path)
            return
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        # What rosbags' Reader.__init__ sets, with our storage in place of its plugin.
        self.path = path
        self.is_open = False
        self.storage = StorageFiles(path)

    def truncated_files(self) -> list[str]:
        """One line per storage file read only up to a damaged end (recorder killed mid-write)."""
        return list(self.storage.truncated) if isinstance(self.storage, StorageFiles) else []


def storage_identifier(reader: Reader) -> str:
    """``mcap`` or ``sqlite3``: the storage of an open bag's files (``""`` if unknown)."""
    storage = reader.storage
    if isinstance(storage, StorageFiles):
        return storage.storage_identifier
    for part in getattr(storage, "storages", None) or [storage]:  # a DirectoryReader holds one per file
        if isinstance(part, McapReader):
            return "mcap"
        if isinstance(part, Sqlite3Reader):
            return "sqlite3"
    return ""
