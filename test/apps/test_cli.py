"""The command line's own parts: parameter overrides, the error boundary, the demo's hand-over
to its process, the image walk of `segment` and the artifact paths of `export`/`build-engine`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seg_perception.apps.cli import build_parser, main
from seg_perception.apps.cli_common import (
    add_demo_options,
    demo_argv,
    non_negative_int,
    positive_float,
    positive_int,
    run_guarded,
)
from seg_perception.apps.engines import instance_target, semantic_target
from seg_perception.apps.images import image_files
from seg_perception.config.overrides import node_params, parse_overrides
from seg_perception.config.records import node_defaults
from seg_perception.errors import ConfigError


def test_param_overrides_are_yaml_scalars() -> None:
    parsed = parse_overrides(["a=256", "b=true", "c=", "d=x=y", "e=0.5", "f=[1, 2]"])
    assert parsed == {"a": 256, "b": True, "c": "", "d": "x=y", "e": 0.5, "f": [1, 2]}


@pytest.mark.parametrize("pair", ["foo", "=1"])
def test_param_override_without_a_key_is_refused(pair: str) -> None:
    with pytest.raises(ConfigError, match=f"-p expects key=value, got {pair!r}"):
        parse_overrides([pair])


def test_node_params_apply_the_file_over_the_defaults_and_the_pairs_over_both(tmp_path: Path) -> None:
    param_file = tmp_path / "p.yaml"
    param_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"input_height": 64, "input_width": 128}}}))
    params = node_params("semantic", param_file, ["input_width=256"])
    assert params == {**node_defaults("semantic"), "input_height": 64, "input_width": 256}
    assert node_params("semantic") == node_defaults("semantic")


def test_error_boundary_prints_one_line_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> int:
        raise ConfigError("parameter x: bad")

    assert run_guarded(fail) == 2
    assert capsys.readouterr().err == "seg-perception: error: parameter x: bad\n"


def test_instance_artifacts_refuse_a_single_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-engine", "--model", "instance", "--onnx", "x.onnx"]) == 2
    assert capsys.readouterr().err == (
        "seg-perception: error: --model instance writes three files: use --engines-dir, not --out/--onnx/--engine\n"
    )


def test_demo_options_reach_the_demo_process_unchanged() -> None:
    args = build_parser().parse_args(
        ["demo", "--out", "-odd dir", "--rate", "0.1", "--seed", "-3", "--config", "c.yaml", "-p", "a=-1", "-p", "b="]
    )
    child = argparse.ArgumentParser()
    add_demo_options(child)
    again = child.parse_args(demo_argv(args))
    assert vars(again) == {k: v for k, v in vars(args).items() if k not in ("command", "func", "verbose")}
    # Defaults travel too: the process gets every option spelled out.
    defaults = child.parse_args(demo_argv(build_parser().parse_args(["demo"])))
    assert vars(defaults) == vars(child.parse_args([]))


@pytest.mark.ros
def test_demo_refuses_a_bad_rate_with_one_line_before_doing_anything(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "seg_perception.apps.cli", "demo", "--rate", "0", "--out", str(tmp_path / "demo")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "seg-perception: error: --rate must be > 0, got 0.0\n"
    assert not (tmp_path / "demo").exists()


def test_the_parser_imports_no_model_code() -> None:
    """`--help` stays instant: building the parser loads no torch, OpenCV, ROS or artifact code."""
    code = (
        "import sys; from seg_perception.apps.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2', 'rclpy', 'onnx') "
        "or m.startswith(('seg_perception.export', 'seg_perception.pipeline', 'seg_perception.ros'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


def test_image_files_expand_folders_png_first_then_jpg(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg", "sub/a.png", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    single = tmp_path / "single.jpeg"
    assert image_files([tmp_path, single]) == [tmp_path / "b.png", tmp_path / "sub/a.png", tmp_path / "a.jpg", single]


def test_artifact_paths_default_to_where_the_nodes_look(tmp_path: Path) -> None:
    params = {**node_defaults("semantic"), "engines_dir": str(tmp_path), "input_height": 64, "input_width": 128}
    target = semantic_target(params)
    stem = f"{target.config.model}_64x128_{target.config.precision}"
    assert (target.onnx, target.engine) == (tmp_path / f"{stem}.onnx", tmp_path / f"{stem}.engine")
    # The flags win over the config: precision names the files, paths replace them.
    other = semantic_target(params, "int8", str(tmp_path / "e"), engine="x.engine")
    assert other.precision == "int8"
    assert (other.onnx, other.engine) == (tmp_path / "e" / f"{target.config.model}_64x128_int8.onnx", Path("x.engine"))

    inst = instance_target({**node_defaults("instance"), "engines_dir": str(tmp_path)}, "fp16")
    assert sorted(inst.onnx) == sorted(inst.engine) == ["backbone", "box_head", "mask_head"]
    assert all(p.parent == tmp_path and "_fp16." in p.name for p in [*inst.onnx.values(), *inst.engine.values()])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--iterations", "0"], "argument --iterations: must be an integer > 0, got '0'"),
        (["bench", "--iterations", "-5"], "argument --iterations: must be an integer > 0, got '-5'"),
        (["bench", "--warmup", "-1"], "argument --warmup: must be an integer >= 0, got '-1'"),
        (["bench", "--width", "0"], "argument --width: must be an integer > 0, got '0'"),
        (["bench", "--height", "1.5"], "argument --height: must be an integer, got '1.5'"),
        (["synth", "--out", "x", "--fps", "0"], "argument --fps: must be a finite number > 0, got '0'"),
        (["synth", "--out", "x", "--fps", "-10"], "argument --fps: must be a finite number > 0, got '-10'"),
        (["synth", "--out", "x", "--fps", "inf"], "argument --fps: must be a finite number > 0, got 'inf'"),
        (["synth", "--out", "x", "--fps", "ten"], "argument --fps: must be a number, got 'ten'"),
        (["synth", "--out", "x", "--frames", "0"], "argument --frames: must be an integer > 0, got '0'"),
        (["synth", "--out", "x", "--height", "-2"], "argument --height: must be an integer > 0, got '-2'"),
        (["replay", "in", "--out", "x", "--limit", "-1"], "argument --limit: must be an integer >= 0, got '-1'"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser_with_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even into the working directory
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    command = argv[0]
    assert err == f"seg-perception {command}: error: {message} (see seg-perception {command} --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_bench_with_zero_iterations_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The installed command as a user runs it (it once ended in a traceback)."""
    cmd = [sys.executable, "-m", "seg_perception.apps.cli", "bench", "--iterations", "0", "--json", str(tmp_path / "b")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "seg-perception bench: error: argument --iterations: must be an integer > 0, got '0' "
        "(see seg-perception bench --help)\n"
    )


def test_number_types_accept_the_edges_they_allow() -> None:
    args = build_parser().parse_args(["bench", "--iterations", "1", "--warmup", "0", "--width", "8"])
    assert (args.iterations, args.warmup, args.width) == (1, 0, 8)
    args = build_parser().parse_args(["synth", "--out", "x", "--fps", "0.5", "--frames", "1"])
    assert (args.fps, args.frames) == (0.5, 1)
    assert positive_float("1e-3") == 1e-3 and positive_int("7") == 7 and non_negative_int("0") == 0


def test_a_missing_required_option_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["synth"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "seg-perception synth: error: the following arguments are required: --out (see seg-perception synth --help)\n"
    )


def test_run_bench_refuses_zero_iterations_from_library_callers_too() -> None:
    from seg_perception.apps.bench import run_bench

    with pytest.raises(ConfigError, match="bench needs iterations > 0"):
        run_bench(node_defaults("semantic"), 64, 32, iterations=0)
