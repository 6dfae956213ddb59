"""The ROS user's path, for real: `colcon build` the package in a fresh workspace, check the
install tree, then `source install/setup.bash` and run the installed node executable with its
installed defaults (shipped weights resolved from install/share) against frames sent over DDS.

Two environments, each on its own PATH and nothing else from the test process: this test
run's venv (colcon from requirements-dev.txt), and (in the Jazzy pass) a fresh one holding only
what the ROS distribution's install provides plus `pip install -r requirements-ros.txt`, as the README says
(test/package/ros_install.py). The node runs from a cwd outside the checkout, so everything it
imports and reads must come from install/ or that environment."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from seg_perception.config.records import SemanticModelConfig, node_defaults
from seg_perception.io.image import decode_image
from seg_perception.pipeline.semantic import SemanticSegmenter
from seg_perception.ros.tools.harness import GraphClient, NodeProcess
from seg_perception.ros.transport import profile_env
from test.package import ros_install
from test.ros.helpers import publish_until

pytestmark = [pytest.mark.slow, pytest.mark.ros]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PKG = "seg_perception"
NODES = [
    "semantic_segmentation_node",
    "instance_segmentation_node",
    "perception_node",
    "bag_player",
    "bag_recorder",
]
NS = "/colcon_cam"
SHIPPED_WEIGHTS = "engines/deeplabv3_mobilenet_v3_large_synth.pth"


def console_scripts() -> list[str]:
    """Names of the console_scripts declared in setup.py (read as text: setup.py runs setup())."""
    return re.findall(r'"([\w-]+) = seg_perception\.[\w.]+:\w+"', (ROOT / "setup.py").read_text())


@dataclass(frozen=True)
class Workspace:
    """A built colcon workspace and the environment (its bin directory) it was built in."""

    root: Path
    bin_dir: Path

    @property
    def install(self) -> Path:
        return self.root / "install" / PKG

    def env(self) -> dict[str, str]:
        """Nothing from the test process but the environment on PATH; no user colcon defaults."""
        return ros_install.clean_env(self.root / "home", [self.bin_dir])


def sourced(ws: Workspace, command: str) -> list[str]:
    """bash command line that sources install/setup.bash first, as a ROS user's shell would."""
    return ["bash", "-c", f'source "{ws.root}/install/setup.bash" && {command}']


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The fresh install costs minutes (torch alone is 5 GB): made once per `make test`, on Jazzy, the
# LTS a ROS user most likely has; the Kilted pass builds from its venv only.
ENVIRONMENTS = ["test-venv", "fresh-ros-install"] if ros_install.running_distro().name == "jazzy" else ["test-venv"]


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A colcon workspace whose src/ links to this checkout, built once per environment. The fresh
    environment (about 7 GB) is removed afterwards: pytest keeps its last three base temps, and CI's
    disk is shared with the two test venvs."""
    root = tmp_path_factory.mktemp("colcon_ws")
    (root / "src").mkdir()
    (root / "src" / PKG).symlink_to(ROOT, target_is_directory=True)
    (root / "home").mkdir()
    fresh = None if request.param == "test-venv" else tmp_path_factory.mktemp("ros_env")
    try:
        yield build_workspace(root, VENV_BIN if fresh is None else ros_install.fresh_ros_env(fresh, root / "home"))
    finally:
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)


def build_workspace(root: Path, bin_dir: Path) -> Workspace:
    """colcon build in `root` with the environment in `bin_dir`, checked to have finished cleanly."""
    ws = Workspace(root, bin_dir)
    colcon = bin_dir / "colcon"
    assert colcon.is_file(), f"{colcon} missing: install requirements-dev.txt (make setup)"
    # colcon must not write into the checkout (build/ install/ log/ or an egg-info beside setup.py).
    watched = [ROOT / name for name in ("build", "install", "log", f"{PKG}.egg-info")]
    existed = {p: p.exists() for p in watched}
    start = time.monotonic()
    result = subprocess.run(
        # As the README writes it: the environment's Python runs colcon, so the executables use it.
        [
            str(bin_dir / "python"),
            "-m",
            "colcon",
            "build",
            "--base-paths",
            str(ROOT),
            "--event-handlers",
            "console_cohesion+",
        ],
        cwd=root,
        env=ws.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - start
    log = f"colcon build exit {result.returncode} after {took:.1f}s\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, log
    assert "1 package finished" in result.stdout, log
    created = [str(p) for p in watched if p.exists() and not existed[p]]
    assert not created, f"colcon build wrote into the checkout: {created}"
    return ws


def test_colcon_build_installs_executables_data_and_ament_index(workspace: Workspace) -> None:
    prefix = workspace.install
    share = prefix / "share" / PKG

    # Node executables where `ros2 run seg_perception <name>` looks (setup.cfg install_scripts).
    lib = prefix / "lib" / PKG
    declared = console_scripts()
    for name in NODES:
        assert name in declared, f"setup.py no longer declares {name}"
    for name in declared:
        exe = lib / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} missing or not executable"
        assert exe.read_text().startswith(f"#!{workspace.bin_dir}/python"), exe.read_text()[:200]

    # The ament index marker (ros2 pkg list / get_package_share_directory) and package.xml.
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PKG).is_file()
    assert (share / "package.xml").read_bytes() == (ROOT / "package.xml").read_bytes()

    # config/ (with labels/ and the Fast DDS profile), launch/, and the shipped weights.
    for rel in (
        "config/semantic.yaml",
        "config/instance.yaml",
        "config/perception.yaml",
        "config/labels/cityscapes.yaml",
        "config/fastdds_large_images.xml",
    ):
        assert (share / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    launch = sorted(p.name for p in (ROOT / "launch").glob("*.launch.py"))
    assert launch and sorted(p.name for p in (share / "launch").glob("*.launch.py")) == launch
    assert sha256(share / SHIPPED_WEIGHTS) == sha256(ROOT / SHIPPED_WEIGHTS)
    assert node_defaults("semantic")["checkpoint"] == SHIPPED_WEIGHTS  # the default the node uses
    # Built artefacts are machine-specific and never installed.
    assert not [p for p in share.rglob("*") if p.suffix in (".onnx", ".engine", ".plan")]

    # The library itself, under the install prefix's site-packages.
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / PKG / "ros" / "semantic_node.py").is_file()
    assert (workspace.root / "install" / "setup.bash").is_file()


def test_sourced_install_imports_the_installed_package(workspace: Workspace, tmp_path: Path) -> None:
    """After `source install/setup.bash`, Python finds seg_perception, its data and its ament
    index entry in install/, not in the checkout."""
    code = (
        "import sys, seg_perception\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "from seg_perception.config.records import node_defaults\n"
        "from seg_perception.resources import resolve, share_dir\n"
        "print(sys.prefix)\n"
        "print(seg_perception.__file__)\n"
        "print(share_dir())\n"
        "print(get_package_share_directory('seg_perception'))\n"
        "print(resolve(node_defaults('semantic')['checkpoint']))\n"
    )
    result = subprocess.run(
        sourced(workspace, f"exec python -c {shlex.quote(code)}"),
        cwd=tmp_path,
        env=workspace.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix_, module, share, indexed, checkpoint = result.stdout.split()
    install = workspace.install
    assert Path(prefix_) == workspace.bin_dir.parent
    assert Path(module).is_relative_to(install), module
    assert Path(share) == Path(indexed) == install / "share" / PKG
    assert Path(checkpoint) == install / "share" / PKG / SHIPPED_WEIGHTS


def installed_node(workspace: Workspace, cwd: Path, extra_env: dict[str, str]) -> NodeProcess:
    """The installed executable, started from a sourced shell that execs it (so SIGINT reaches it)."""
    exe = workspace.install / "lib" / PKG / "semantic_segmentation_node"
    return NodeProcess.from_command(
        sourced(workspace, f'exec "{exe}" --ros-args -r __ns:={NS}'), workspace.env() | extra_env, cwd
    )


def scene(width: int, height: int, seed: int, encoding: str = "rgb8") -> Image:
    """A smooth random frame (not noise, so the class map varies)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), np.uint8)
    pixels = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=width * 3)
    msg.data = pixels.tobytes()
    return msg


def node_status(client: GraphClient) -> dict[str, str]:
    """Values of the newest /diagnostics status of the node (the one that names its checkpoint)."""
    for msg in reversed(client.messages("/diagnostics")):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name.startswith(NS + "/") and "checkpoint" in values:
                return values
    return {}


def test_installed_node_runs_on_installed_defaults_over_dds(workspace: Workspace, tmp_path: Path) -> None:
    install = workspace.install
    share = install / "share" / PKG
    ros_env = {k: os.environ[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION")}
    ros_env.update(profile_env(share / "config" / "fastdds_large_images.xml"))
    # What the node must compute: the same shipped weights and installed defaults, run offline.
    offline = SemanticSegmenter.from_config(SemanticModelConfig.from_params(node_defaults("semantic")))

    node = installed_node(workspace, tmp_path, ros_env)
    client = GraphClient("colcon_test_client")
    try:
        client.subscribe(Image, f"{NS}/semantic/class_map")
        client.subscribe(DiagnosticArray, "/diagnostics")
        pub = client.publisher(Image, f"{NS}/image")
        assert client.wait_for(lambda: pub.get_subscription_count() > 0, 90), node.output
        assert node.proc.poll() is None, node.output

        for i, (width, height) in enumerate([(640, 480), (333, 250), (1024, 512)]):
            msg = scene(width, height, seed=100 + i)
            msg.header = client.now_msg_header(f"colcon_cam_{i}")
            out = publish_until(client, pub, msg, f"{NS}/semantic/class_map", timeout=60)
            assert out is not None, f"no class_map for frame {i}:\n{node.output}"
            assert out.header.stamp == msg.header.stamp and out.header.frame_id == msg.header.frame_id
            assert (out.height, out.width, out.encoding) == (height, width, "mono8")
            published = np.frombuffer(bytes(out.data), np.uint8).reshape(out.height, out.step)[:, :width]
            expected = offline.segment([decode_image(msg)])[0].class_map
            assert np.array_equal(published, expected), f"frame {i}: class map differs from the offline core"

        # The node's own view: the shipped weights from install/share (so it imported the
        # installed seg_perception: the share dir is found beside the module), on torch/cpu.
        assert client.wait_for(lambda: bool(node_status(client)), 15), node.output
        status = node_status(client)
        assert Path(status["checkpoint"]) == share / SHIPPED_WEIGHTS, status
        assert status["model"] == "deeplabv3_mobilenet_v3_large", status
    finally:
        client.close()
        code = node.stop()
    assert code == 0, f"installed node did not exit cleanly on SIGINT (exit {code}):\n{node.output}"
    assert "abort" not in node.output.lower() and "terminate called" not in node.output, node.output
    assert "UNTRAINED" not in node.output, node.output
