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

REPO = Path(__file__).resolve().parents[2]
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
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_launch_files() -> None:
    assert {"semantic.launch.py", "instance.launch.py", "perception.launch.py", "replay.launch.py"} <= {
        p.name for p in LAUNCH_FILES
    }


DESCRIPTIONS = ("camera_node_launch", "replay_launch")  # what launch files may call (launch_description.py)


def _description_function(name: str) -> ast.FunctionDef:
    tree = ast.parse((REPO / "seg_perception" / "ros" / "launch_description.py").read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


def _launch_calls(launch_file: Path) -> list[ast.Call]:
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    calls = [c for name in DESCRIPTIONS for c in _calls(tree, name)]
    assert calls, f"{launch_file.name} starts no node"
    return calls


def _executables(call: ast.Call) -> list[str]:
    """The executables a launch file's call starts: its ``executable=`` argument, or the
    literal ``executable=`` of every Node in the called description function."""
    if _kw(call, "executable") is not None:
        return [ast.literal_eval(_kw(call, "executable"))]
    nodes = _calls(_description_function(call.func.id), "Node")
    return [ast.literal_eval(_kw(n, "executable")) for n in nodes]


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_only_console_scripts(launch_file: Path) -> None:
    scripts = console_scripts()
    for call in _launch_calls(launch_file):
        for executable in _executables(call):
            assert executable in scripts, f"{launch_file.name}: {executable} is not a console script"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_only_files_that_exist(launch_file: Path) -> None:
    for call in _launch_calls(launch_file):
        function = _description_function(call.func.id)
        names = [ast.literal_eval(_kw(call, "params_file"))] if _kw(call, "params_file") is not None else []
        for join in _calls(function, "PathJoinSubstitution"):
            folder, name = join.args[0].elts[1:3]
            if isinstance(name, ast.Constant):
                names.append(name.value)
                assert ast.literal_eval(folder) == "config"
        assert names
        for params in names:
            assert (REPO / "config" / params).is_file(), f"{launch_file.name} names missing config/{params}"


def test_launch_description_runs_this_package_with_installed_config() -> None:
    """The shared description starts a launch_ros Node of this package, its parameter file
    found under the installed share/seg_perception/config."""
    function = _description_function("camera_node_launch")
    (node,) = _calls(function, "Node")
    (node_args,) = [c for c in _calls(function, "dict") if _kw(c, "package") is not None]
    assert ast.literal_eval(_kw(node_args, "package")) == "seg_perception"
    assert isinstance(_kw(node_args, "executable"), ast.Name)  # the launch file's executable
    (join,) = _calls(function, "PathJoinSubstitution")
    share, config = join.args[0].elts[:2]
    assert ast.literal_eval(share.args[0]) == "seg_perception" and ast.literal_eval(config) == "config"
    declared = {ast.literal_eval(c.args[0]) for c in _calls(function, "DeclareLaunchArgument")}
    assert declared == {
        "namespace",
        "image",
        "compressed_image",
        "params_file",
        "use_sim_time",
        "cameras",
        "lifecycle",
        "autostart",
    }
    # The same arguments go to the plain node and the managed (lifecycle) one, each behind its condition.
    (managed,) = _calls(function, "LifecycleNode")
    assert ast.unparse(managed) == ast.unparse(node).replace("Node(", "LifecycleNode(", 1).replace(
        "UnlessCondition", "IfCondition"
    )
    source = ast.unparse(function)
    assert "TRANSITION_CONFIGURE" in source and "TRANSITION_ACTIVATE" in source


def test_the_vehicle_launch_file_starts_a_managed_node() -> None:
    (call,) = _launch_calls(REPO / "launch" / "perception.launch.py")
    assert ast.literal_eval(_kw(call, "lifecycle")) is True


def test_replay_launch_wires_player_node_recorder_on_the_bag_clock() -> None:
    function = _description_function("replay_launch")
    nodes = {ast.literal_eval(_kw(n, "executable")): n for n in _calls(function, "Node")}
    assert set(nodes) == {"bag_player", "perception_node", "bag_recorder"}
    source = ast.unparse(function)
    assert "'use_sim_time': True" in source
    for name in ("perception_node", "bag_recorder"):
        assert "sim_time" in ast.unparse(_kw(nodes[name], "parameters")), name
    # The recorder writes every output of the node contract.
    from seg_perception.ros.launch_description import REPLAY_OUTPUTS

    assert {"semantic/class_map", "instance/instance_map", "panoptic/panoptic_map"} <= set(REPLAY_OUTPUTS)


def test_rviz_config_shows_the_camera_and_the_three_overlays() -> None:
    import yaml

    config = yaml.safe_load((REPO / "config" / "seg_perception.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    assert {d["Class"] for d in displays} == {"rviz_default_plugins/Image"}
    topics = [d["Topic"]["Value"] for d in displays]
    assert topics == [
        "/camera/image_raw",
        "/camera/semantic/overlay",
        "/camera/instance/overlay",
        "/camera/panoptic/overlay",
    ]
    # The camera with the sensor-data profile; the reliable outputs with reliable subscriptions.
    assert [d["Topic"]["Reliability Policy"] for d in displays] == ["Best Effort"] + ["Reliable"] * 3


def test_package_xml_is_an_ament_python_package() -> None:
    """Its dependencies: test_declared_dependencies.py (exactly what the code imports)."""
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.find("export/build_type").text == "ament_python"
    assert (REPO / "resource" / "seg_perception").is_file()


def test_node_executables_are_console_scripts() -> None:
    assert {
        "seg-perception",
        "semantic_segmentation_node",
        "instance_segmentation_node",
        "perception_node",
        "bag_player",
        "bag_recorder",
    } <= console_scripts()


def test_cli_reports_errors_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seg_perception.apps.cli",
            "segment",
            str(tmp_path / "missing.png"),
            "--out",
            str(tmp_path),
            "-p",
            "backend=nope",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("seg-perception: error: parameter backend")
    assert "Traceback" not in proc.stderr
