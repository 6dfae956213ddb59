"""``make gpu-check`` (``python -m seg_perception.apps.gpu_check``) in its no-GPU mode: the
plumbing runs for real (environment, the bench code on the CPU, the reports), every GPU step
says that it was skipped and why. Run by ``make test`` so the script cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seg_perception.apps import gpu_check
from seg_perception.resources import import_root


@pytest.mark.slow
def test_gpu_check_without_a_gpu_runs_its_plumbing_and_says_what_it_skipped(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seg_perception.apps.gpu_check", "--no-gpu", "--out", str(tmp_path)],
        cwd=import_root(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["environment", "cuda_tests", "bench", "tensorrt", "switch_over"]
    assert report["gpu"] is False and report["passed"] is True
    assert steps["environment"]["status"] == "passed" and steps["environment"]["data"]["torch"]
    assert steps["bench"]["status"] == "passed"
    rows = steps["bench"]["data"]["rows"]
    names = {(r["name"], r["batch"]) for r in rows}
    assert ("semantic torch fp32", 4) in names and ("instance torch fp32", 4) in names
    assert any(r["batch"] == 1 and r["name"].startswith("maskrcnn") for r in rows)  # bench's own instance case
    for name in ("cuda_tests", "tensorrt", "switch_over"):
        assert steps[name]["status"] == "skipped" and steps[name]["detail"].startswith("no CUDA GPU here")
        assert report["skipped"][name] == steps[name]["detail"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| tensorrt | skipped |" in markdown and "| bench | passed |" in markdown
    assert "[gpu-check] switch_over: skipped" in proc.stdout


def test_a_failing_step_fails_the_check_with_its_reason_and_the_rest_still_runs(tmp_path: Path) -> None:
    check = gpu_check.Check(tmp_path, gpu=False, budget_s=60)

    def broken(step: gpu_check.Step) -> None:
        raise RuntimeError("engine disagrees with torch")

    def cannot(step: gpu_check.Step) -> None:
        raise gpu_check.SkipStepError("no TensorRT runtime usable here: TensorRT-RTX does not run on NVIDIA H200")

    check.step("broken", broken)
    check.step("cannot", cannot)
    check.step("later", lambda step: step.data.update(ran=True))
    report = gpu_check.write_reports(check)
    assert report["passed"] is False
    steps = {s["name"]: s for s in report["steps"]}
    assert (
        steps["broken"]["status"] == "failed"
        and steps["broken"]["detail"] == "RuntimeError: engine disagrees with torch"
    )
    assert "Traceback" in steps["broken"]["data"]["traceback"]
    assert steps["cannot"]["status"] == "skipped" and "H200" in report["skipped"]["cannot"]
    assert steps["later"]["status"] == "passed" and steps["later"]["data"] == {"ran": True}
    spent = gpu_check.Check(tmp_path, gpu=False, budget_s=-1)
    assert spent.step("late", lambda step: None).detail == "time budget spent by the steps before"
