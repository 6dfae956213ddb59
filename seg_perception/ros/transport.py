"""The node's side of the DDS transport for camera-sized frames.

A camera driver runs with whatever middleware settings it was given, usually none. With Fast
DDS defaults its writer puts a large frame into a 0.5 MB shared-memory segment as 64 kB
fragments and overwrites them before another process has read them all: a best-effort reader
on the same host loses almost every 1080p frame, a reliable reader gets them re-sent. The
node cannot change the camera's segment, so its profile (``config/fastdds_large_images.xml``)
announces only UDP locators for the data it receives, with a receive buffer large enough for
a frame's burst of fragments, and keeps a large shared-memory segment for what it publishes.
The kernel caps that buffer at ``net.core.rmem_max``; below about 32 MB the node says so
once at start-up (measurements: docs/BENCHMARKS.md, "Behind a stock camera").
"""

from __future__ import annotations

import os
from pathlib import Path

from seg_perception.resources import config_path
from seg_perception.ros.input_health import WANTED_RECEIVE_BUFFER

# Fast DDS 3 (Kilted) reads the first, Fast DDS 2 (Jazzy, Humble) only the second.
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_large_images.xml"
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


def use_large_image_profile() -> None:
    """Use our Fast DDS profile unless the user configured Fast DDS or another middleware.
    Must run before ``rclpy.init`` (Fast DDS reads the variable when it creates a participant)."""
    if any(os.environ.get(v) for v in PROFILE_VARS):
        return
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return
    profile = config_path(PROFILE_NAME)
    if profile.is_file():
        os.environ.update(profile_env(profile))


def profile_env(profile: str | Path) -> dict[str, str]:
    """The variables that make a process load Fast DDS ``profile``, on every distribution."""
    return dict.fromkeys(PROFILE_VARS, str(profile))


def large_image_profile_active() -> bool:
    """True when this process runs Fast DDS with our profile (ours, not the user's own)."""
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return False
    return any(Path(os.environ.get(var, "")).name == PROFILE_NAME for var in PROFILE_VARS)


def receive_buffer_limit() -> int | None:
    """``net.core.rmem_max`` in bytes (the largest socket receive buffer a process may ask for),
    or None where it cannot be read (not Linux)."""
    try:
        return int(RMEM_MAX.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def receive_buffer_warning(limit: int | None) -> str:
    """One log line when the kernel caps our UDP receive buffer below what large frames need."""
    if limit is None or limit >= WANTED_RECEIVE_BUFFER:
        return ""
    return (
        f"net.core.rmem_max is {limit} bytes, below the {WANTED_RECEIVE_BUFFER} this node asks for: frames "
        "from a best-effort camera larger than that can be lost (reliable cameras are not affected); "
        f"raise it with: sudo sysctl -w net.core.rmem_max={WANTED_RECEIVE_BUFFER}"
    )
