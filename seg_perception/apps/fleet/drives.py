"""The drives of a fleet run: from the command line's bags, folders of bags and manifest to an
ordered list of :class:`Drive` records, each with a deterministic output folder and a
completion record, so a re-run knows which drives are done.

The list is made once, by the driver, from explicit paths: a folder argument is expanded here
(bags directly inside it), never by a glob inside the cluster's tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_perception.errors import BagError, ConfigError
from seg_perception.io.bag_files import SUFFIXES

DONE = "done.json"  # the completion record, written last
RECORD_VERSION = 1


@dataclass(frozen=True)
class Drive:
    """One recorded drive: its bag, its place in the run's order and its tags (``condition``
    and any other ``key=value`` of the manifest)."""

    index: int
    path: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def condition(self) -> str:
        return self.tags.get("condition", "")

    @property
    def key(self) -> str:
        """Output folder name: the bag's name and a hash of its absolute path (two drives
        called ``run1`` in different folders do not collide; the order of the list does not
        matter, so a manifest may grow between runs)."""
        digest = hashlib.sha1(str(Path(self.path).resolve()).encode()).hexdigest()[:10]
        return f"{Path(self.path).name}-{digest}"


def is_bag_path(path: Path) -> bool:
    """A rosbag2 folder (metadata.yaml or storage files) or one storage file."""
    if path.is_file():
        return path.suffix in SUFFIXES
    return path.is_dir() and (
        (path / "metadata.yaml").is_file() or any(p.suffix in SUFFIXES for p in path.iterdir() if p.is_file())
    )


def collect_drives(paths: Sequence[str], manifest: str | None = None) -> list[Drive]:
    """Drives in command-line order: each path a bag or a folder whose sub-folders are bags
    (sorted by name), then the manifest's lines. ConfigError for no drives, a missing path
    or manifest entry, or a folder holding no bag."""
    found: list[tuple[str, dict[str, str]]] = []
    for arg in paths:
        found += [(p, {}) for p in _expand(Path(arg), "argument")]
    if manifest:
        found += read_manifest(Path(manifest))
    if not found:
        raise ConfigError("no bags given: pass bags, folders of bags, or --manifest FILE")
    seen: dict[str, int] = {}
    drives: list[Drive] = []
    for path, tags in found:
        resolved = str(Path(path).resolve())
        if resolved in seen:
            raise ConfigError(f"bag {path} is listed twice (entries {seen[resolved] + 1} and {len(drives) + 1})")
        seen[resolved] = len(drives)
        drives.append(Drive(len(drives), path, tags))
    return drives


def read_manifest(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Lines ``BAG [key=value ...]`` (``#`` comments, blank lines skipped); a relative BAG is
    relative to the manifest's folder; a bare second word is the condition."""
    if not path.is_file():
        raise ConfigError(f"manifest {path} does not exist")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        bag = Path(words[0]) if Path(words[0]).is_absolute() else path.parent / words[0]
        if not is_bag_path(bag):
            raise ConfigError(f"manifest {path} line {number}: {words[0]} is not a bag (resolved to {bag})")
        tags = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep:
                key, value = "condition", word
            if not key or not value:
                raise ConfigError(f"manifest {path} line {number}: tag {word!r} is not key=value")
            tags[key] = value
        entries.append((str(bag), tags))
    return entries


def _expand(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if is_bag_path(path):
        return [str(path)]
    if path.is_dir():
        inner = sorted(str(p) for p in path.iterdir() if is_bag_path(p))
        if inner:
            return inner
    raise ConfigError(f"{what} {path} is neither a bag nor a folder of bags")


def fingerprint(params: Mapping[str, Any], models: Sequence[str]) -> str:
    """What decides a drive's results: a record made under other parameters is not reused."""
    text = json.dumps({"params": dict(params), "models": list(models)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def drive_dir(out: Path, drive: Drive) -> Path:
    return out / "drives" / drive.key


def read_record(out: Path, drive: Drive, stamp: str) -> dict[str, Any] | None:
    """The drive's completion record (an error one included) if it was made under the same
    fingerprint and record version, else None."""
    try:
        record = json.loads((drive_dir(out, drive) / DONE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("version") != RECORD_VERSION or record.get("fingerprint") != stamp:
        return None
    return dict(record)


def completed(out: Path, drive: Drive, stamp: str) -> dict[str, Any] | None:
    """The drive's record if it finished under the same fingerprint, else None. A drive that
    ended in an error is not complete: a re-run tries it again."""
    record = read_record(out, drive, stamp)
    return None if record is None or record.get("error") else record


def write_record(folder: Path, record: Mapping[str, Any]) -> None:
    """Write the completion record atomically (a rename), after everything it vouches for."""
    tmp = folder / (DONE + ".tmp")
    tmp.write_text(json.dumps({"version": RECORD_VERSION, **record}, indent=1) + "\n")
    os.replace(tmp, folder / DONE)


def check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BagError(f"--out {out} exists and is not a folder")
