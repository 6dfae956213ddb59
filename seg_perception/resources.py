"""Where the package's data files (config/, launch/, engines/) live.

Three layouts are supported: a source checkout (files beside the package), a colcon/ament
install (``<prefix>/share/seg_perception``) and anything ament_index can locate.
"""

from __future__ import annotations

import functools
from pathlib import Path

PACKAGE = "seg_perception"


@functools.lru_cache(maxsize=1)
def share_dir() -> Path:
    """Directory holding ``config/``, ``launch/`` and ``engines/``."""
    here = Path(__file__).resolve().parent
    checkout = here.parent
    if (checkout / "config" / "semantic.yaml").is_file():
        return checkout
    # <prefix>/lib/python3.X/site-packages/seg_perception -> <prefix>/share/seg_perception
    for parent in here.parents:
        candidate = parent / "share" / PACKAGE
        if (candidate / "config").is_dir():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:
        # Broad on purpose: no ament_index_python, no ament environment or no such package: the error below says it.
        pass
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} data files (config/, launch/, engines/) beside {here} or in an ament install"
    )


def import_root() -> Path:
    """The directory that holds the ``seg_perception`` package: on ``PYTHONPATH``, a child
    process imports this very copy (a checkout included)."""
    return Path(__file__).resolve().parents[1]


def resolve(path: str | Path) -> Path:
    """Resolve a user path: absolute or existing as given, else relative to :func:`share_dir`."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return share_dir() / p


def config_path(name: str) -> Path:
    """Path of ``config/<name>``."""
    return share_dir() / "config" / name


def config_yaml(name_or_path: str | Path, folder: str, what: str) -> Path:
    """A YAML file given by path, or by name as ``config/<folder>/<name>.yaml``; raises
    ConfigError naming ``what`` and the path looked at when it does not exist."""
    from seg_perception.errors import ConfigError

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_path(f"{folder}/{name_or_path}.yaml" if folder else f"{name_or_path}.yaml")
    if not path.is_file():
        raise ConfigError(f"{what} {str(name_or_path)!r} not found (looked for {path})")
    return path
