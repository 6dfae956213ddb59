"""Static checks of what a ROS install relies on: launch files, console scripts, package.xml.

launch/launch_ros cannot be installed here, so launch files are checked by reading them:
every executable they start is a console script of setup.py and every package file they
name exists."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def console_scripts() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return {entry.split("=")[0].strip() for entry in scripts}
    raise AssertionError("setup.py has no entry_points")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_launch_files() -> None:
    assert {"semantic.launch.py", "instance.launch.py", "perception.launch.py"} <= {p.name for p in LAUNCH_FILES}


def _launch_calls(launch_file: Path) -> list[ast.Call]:
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    calls = _calls(tree, "camera_node_launch")
    assert calls, f"{launch_file.name} starts no node"
    return calls


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_only_console_scripts(launch_file: Path) -> None:
    scripts = console_scripts()
    for call in _launch_calls(launch_file):
        executable = ast.literal_eval(_kw(call, "executable"))
        assert executable in scripts, f"{launch_file.name}: {executable} is not a console script"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_files_that_exist(launch_file: Path) -> None:
    for call in _launch_calls(launch_file):
        params = ast.literal_eval(_kw(call, "params_file"))
        assert (REPO / "config" / params).is_file(), f"{launch_file.name} names missing config/{params}"


def test_launch_description_runs_this_package_with_installed_config() -> None:
    """The shared description starts a launch_ros Node of this package, its parameter file
    found under the installed share/seg_perception/config."""
    tree = ast.parse((REPO / "seg_perception" / "launch_description.py").read_text())
    (node,) = _calls(tree, "Node")
    assert ast.literal_eval(_kw(node, "package")) == "seg_perception"
    assert isinstance(_kw(node, "executable"), ast.Name)  # the launch file's executable
    (join,) = _calls(tree, "PathJoinSubstitution")
    share, config = join.args[0].elts[:2]
    assert ast.literal_eval(share.args[0]) == "seg_perception" and ast.literal_eval(config) == "config"
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert declared == {"namespace", "image", "compressed_image", "params_file", "use_sim_time"}


def test_package_xml_declares_run_dependencies() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    deps = {e.text for e in root.iter("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "visualization_msgs",
                "python3-numpy", "python3-opencv", "launch_ros"):
        assert dep in deps
    assert root.find("export/build_type").text == "ament_python"
    assert (REPO / "resource" / "seg_perception").is_file()


def test_node_executables_are_console_scripts() -> None:
    assert {"seg-perception", "semantic_segmentation_node", "instance_segmentation_node", "perception_node"} <= console_scripts()


def test_cli_reports_errors_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seg_perception.cli", "segment", str(tmp_path / "missing.png"),
         "--out", str(tmp_path), "-p", "backend=nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("seg-perception: error: parameter backend")
    assert "Traceback" not in proc.stderr
