"""package.xml and the requirement files declare exactly what the code imports, and the Kilted and
Jazzy environments pin the same packages (each its own releases)."""

from __future__ import annotations

from test.package.ros_install import (
    APT_PYTHON,
    DISTROS,
    GENERATORS,
    MODULE_OF,
    OPTIONAL_MODULES,
    ROOT,
    distribution_wheels,
    exec_depends,
    imported_modules,
    pins,
)

ROS_PIP = ROOT / "requirements-ros.txt"


def test_package_xml_and_requirements_ros_declare_exactly_what_the_code_imports() -> None:
    imported = imported_modules()
    declared = exec_depends()
    apt_modules = {module for module, _ in APT_PYTHON.values()}
    from_pip = {MODULE_OF.get(name, name) for name in pins(ROS_PIP)}
    undeclared = {
        module: files[:3]
        for module, files in imported.items()
        if module not in declared and module not in apt_modules | from_pip | OPTIONAL_MODULES
    }
    assert not undeclared, f"imported but declared in neither package.xml nor requirements-ros.txt: {undeclared}"
    unused = [key for key in declared if (APT_PYTHON[key][0] if key in APT_PYTHON else key) not in imported]
    assert not unused, f"package.xml declares what no module imports: {unused}"
    assert not from_pip - imported.keys(), (
        f"requirements-ros.txt installs what nothing imports: {from_pip - imported.keys()}"
    )
    assert len(declared) == len(set(declared)), declared


def test_requirements_ros_pins_what_the_venv_runs() -> None:
    base = pins(ROOT / "requirements-base.txt")
    for name, pinned in pins(ROS_PIP).items():
        assert base.get(name) == pinned, (
            f"requirements-ros.txt {name}=={pinned}, requirements-base.txt {base.get(name)}"
        )


def test_every_distribution_pins_the_ros_packages_package_xml_declares() -> None:
    wanted = {name for name in distribution_wheels(exec_depends()) if name.startswith("ros-")}
    for distro in DISTROS:
        pinned = pins(distro.requirements)
        assert {name for name in pinned if name.startswith("ros-")} - GENERATORS == wanted, distro.name
        locked = pins(distro.constraints)
        for name in [*pinned, *pins(ROOT / "requirements-base.txt"), *pins(ROOT / "requirements-dev.txt")]:
            assert name.lower().replace("_", "-") in {n.lower().replace("_", "-") for n in locked}, (distro.name, name)
        for name, ver in pinned.items():
            assert locked[name] == ver, (distro.name, name, ver, locked[name])
