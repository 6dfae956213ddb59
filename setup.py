"""ament_python package: `colcon build` installs the library, node executables under
lib/seg_perception/, and launch/, config/, engines/ under share/seg_perception/."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "seg_perception"


def tree(pattern: str) -> list[str]:
    return [p for p in glob(pattern, recursive=True) if not p.endswith((".engine", ".plan", ".engine.json", ".onnx"))]


def data_dirs() -> list[tuple[str, list[str]]]:
    """Install every file under config/, launch/ and engines/, keeping subfolders."""
    groups: dict[str, list[str]] = {}
    for folder in ("config", "launch", "engines"):
        for path in tree(f"{folder}/**/*.*"):  # *.rviz included
            groups.setdefault(f"share/{PACKAGE}/" + path.rsplit("/", 1)[0], []).append(path)
    return sorted(groups.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *data_dirs(),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="seg_perception maintainers",
    maintainer_email="perception@example.com",
    description="Real-time camera segmentation (DeepLab, Mask R-CNN) for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "seg-perception = seg_perception.apps.cli:main",
            "semantic_segmentation_node = seg_perception.ros.semantic_node:main",
            "instance_segmentation_node = seg_perception.ros.instance_node:main",
            "perception_node = seg_perception.ros.perception_node:main",
            "bag_player = seg_perception.ros.bag_player:main",
            "bag_recorder = seg_perception.ros.bag_recorder:main",
        ],
    },
)
