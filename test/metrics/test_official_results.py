"""`eval` reads the official Cityscapes result conventions and scores them exactly as the
official scripts do, and what we write in those conventions is taken by the official scripts
as is.

Layout exactly as cityscapesscripts expects: ``$CITYSCAPES_DATASET/gtFine/val/<city>/`` with
``*_gtFine_labelIds.png`` / ``*_gtFine_instanceIds.png`` and the panoptic ground truth made by
``createPanopticImgs``; each official script runs unmodified in a child process (``main()``
with no arguments: it finds the ground truth and, through ``$CITYSCAPES_RESULTS``, the result
files itself). Result files come from other writers: label-id PNGs and instance masks saved
with PIL, instance lists written as the official reader documents them, the panoptic json +
PNG folder written by ``createPanopticImgs`` from predicted instanceIds-encoded maps.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from seg_perception.apps.cli import main
from seg_perception.errors import ConfigError
from seg_perception.metrics.cityscapes.results import ResultsWriter, read_mask
from seg_perception.metrics.cityscapes.results_eval import detect_format, evaluate_official_results
from seg_perception.metrics.run import evaluate_paths
from seg_perception.synthetic.writers import write_cityscapes
from test.metrics.test_metrics import _ground_truth_frames, _predict

Image = pytest.importorskip("PIL.Image")
create_panoptic = pytest.importorskip("cityscapesscripts.preparation.createPanopticImgs")
pytest.importorskip("pycocotools")

TOL = 1e-12  # the official PQ sums over cpu_count() processes: last-bit differences only

# Runs one official script's main() as its command line does. Two shims only, for numpy 2.4
# and JSON: np.in1d (removed in numpy 2.4, still called there) and writeDict2JSON (numpy
# integers are not JSON). The instance script's ground-truth cache is moved out of
# site-packages, where it would outlive the test.
OFFICIAL = """
import json, sys
import numpy as np
np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(np.asarray(a).ravel(), b, invert=invert)
import importlib
mod = importlib.import_module("cityscapesscripts.evaluation." + sys.argv[1])
def write_json(obj, name):
    with open(name, "w") as f:
        json.dump(obj, f, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__, sort_keys=True)
mod.writeDict2JSON = write_json
if hasattr(mod, "args"):
    mod.args.gtInstancesFile = "gtInstances.json"
    mod.args.colorized = False
sys.argv = sys.argv[:1]
mod.main()
"""
RESULT_FILES = {
    "evalPixelLevelSemanticLabeling": "resultPixelLevelSemanticLabeling.json",
    "evalInstanceLevelSemanticLabeling": "resultInstanceLevelSemanticLabeling.json",
    "evalPanopticSemanticLabeling": "resultPanopticSemanticLabeling.json",
}


def run_official(script: str, dataset: Path, results: Path, work: Path) -> dict:
    """Run ``cityscapesscripts.evaluation.<script>`` on CITYSCAPES_DATASET / CITYSCAPES_RESULTS."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CITYSCAPES_DATASET": str(dataset),
        "CITYSCAPES_RESULTS": str(results),
        "CITYSCAPES_EXPORT_DIR": str(work),
    }
    proc = subprocess.run(
        [sys.executable, "-c", OFFICIAL, script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    name = RESULT_FILES[script]
    path = work / name if (work / name).is_file() else dataset / "evaluationResults" / name
    return json.loads(path.read_text())


def same(a: float | None, b: float | None, tol: float = TOL) -> bool:
    a = float("nan") if a is None else float(a)
    b = float("nan") if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def _save(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(path)


def _panoptic_from_instance_ids(maps: dict[str, np.ndarray], out: Path, scratch: Path) -> None:
    """The official panoptic writer: predicted maps in the instanceIds encoding (stuff = label
    id, things = label_id*1000 + k) through createPanopticImgs into ``out``."""
    src = scratch / "gtFine" / "val" / "synth"
    src.mkdir(parents=True)
    for stem, pan in maps.items():
        Image.fromarray(pan.astype(np.uint16)).save(src / f"{stem}_gtFine_instanceIds.png")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        create_panoptic.convert2panoptic(str(scratch / "gtFine"), str(out), setNames=["val"])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("official")
    frames = _ground_truth_frames()
    dataset = root / "cityscapes"
    write_cityscapes(dataset, frames, city="synth", split="val")
    with contextlib.redirect_stdout(io.StringIO()):  # the panoptic ground truth, the official way
        create_panoptic.convert2panoptic(str(dataset / "gtFine"), str(dataset / "gtFine"), setNames=["val"])
    stems = [f"synth_000000_{fr.index:06d}" for fr in frames]
    results = root / "results"
    rng = np.random.default_rng(5)
    pans = {}
    for stem, fr in zip(stems, frames):
        sem, imap, scores, pan = _predict(fr, rng)
        pans[stem] = pan
        # semantic: label ids, named as segmentation toolboxes name them
        _save(results / "semantic" / "synth" / f"{stem}_leftImg8bit.png", sem.astype(np.uint8))
        # instance: a mask per map value, plus a dilated duplicate of the best car (overlapping)
        # and one RGB mask whose dark pixels PIL's luminance turns to 0
        lines = []
        inst_dir = results / "instance"
        for j, (value, score) in enumerate(sorted(scores.items())):
            mask = (imap == value).astype(np.uint8) * 255
            _save(inst_dir / "masks" / f"{stem}_{j}.png", mask)
            lines.append(f"masks/{stem}_{j}.png {value // 1000} {score}")
        cars = [v for v in scores if v // 1000 == 26 and (imap == v).any()]
        if cars:
            dup = cv2.dilate((imap == cars[0]).astype(np.uint8), np.ones((5, 5), np.uint8)) * 255
            _save(inst_dir / "masks" / f"{stem}_dup.png", dup)
            lines.append(f"masks/{stem}_dup.png 26 0.55")
            rgb = np.zeros((*imap.shape, 3), np.uint8)
            on = np.argwhere(imap == cars[0])
            half = on[: len(on) // 2]
            rgb[half[:, 0], half[:, 1]] = (0, 0, 1)  # luminance 0: outside
            rest = on[len(on) // 2 :]
            rgb[rest[:, 0], rest[:, 1]] = (0, 0, 9)  # luminance 1: inside
            _save(inst_dir / "masks" / f"{stem}_rgb.png", rgb, "RGB")
            lines.append(f"masks/{stem}_rgb.png 26.0 0.35")
        (inst_dir / f"{stem}_leftImg8bit_pred.txt").write_text("\n".join(lines) + "\n")
    _panoptic_from_instance_ids(pans, results / "panoptic", root / "pan_src")
    return SimpleNamespace(root=root, dataset=dataset, results=results, stems=stems, frames=frames)


@pytest.fixture(scope="module")
def ours(data) -> dict:
    """Ours on all three tasks from one folder (the official scripts need one folder each)."""
    return evaluate_official_results(data.results, data.dataset)


def test_semantic_label_id_pngs_score_as_the_official_pixel_level_script(data, ours) -> None:
    off = run_official("evalPixelLevelSemanticLabeling", data.dataset, data.results / "semantic", data.root / "w_px")
    sem = ours["semantic"]
    assert np.array_equal(np.array(off["confMatrix"]), np.array(sem["confusion_matrix"]))
    for name, v in sem["classes"].items():
        assert same(v["iou"], off["classScores"][name]), name
        assert same(v["iiou"], off["classInstScores"][name]), name
    assert same(sem["mIoU"], off["averageScoreClasses"])
    assert same(sem["miIoU"], off["averageScoreInstClasses"])
    assert same(sem["mean_category_iou"], off["averageScoreCategories"])
    assert same(sem["mean_category_iiou"], off["averageScoreInstCategories"])
    assert 0.3 < sem["mIoU"] < 0.95


def test_instance_txt_results_score_as_the_official_instance_level_script(data, ours) -> None:
    off = run_official("evalInstanceLevelSemanticLabeling", data.dataset, data.results / "instance", data.root / "w_in")
    res = ours["instance"]["cityscapes"]
    mine, theirs = np.array(res["ap_matrix"]), np.array(off["resultApMatrix"])[0]
    assert np.array_equal(np.isnan(mine), np.isnan(theirs))
    assert np.allclose(mine[~np.isnan(mine)], theirs[~np.isnan(theirs)], atol=TOL, rtol=0)
    assert same(res["AP"], off["averages"]["allAp"]) and same(res["AP50"], off["averages"]["allAp50%"])
    for name, v in res["classes"].items():
        assert same(v["ap"], off["averages"]["classes"][name]["ap"]), name
    assert 0.05 < res["AP"] < 0.95
    assert 0.0 < ours["instance"]["coco"]["AP"] < 1.0


def test_panoptic_json_and_folder_score_as_the_official_panoptic_script(data, ours) -> None:
    off = run_official("evalPanopticSemanticLabeling", data.dataset, data.results / "panoptic", data.root / "w_pq")
    pan = ours["panoptic"]
    for group in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert same(pan[group][k], off[group][k]), (group, k)
        assert pan[group]["n"] == off[group]["n"]
    assert 0.1 < pan["All"]["pq"] < 0.95 and pan["Things"]["n"] >= 3


def test_rgb_instance_masks_are_read_as_pil_converts_them_to_grey(data) -> None:
    path = next((data.results / "instance" / "masks").glob("*_rgb.png"))
    assert np.array_equal(read_mask(path), np.array(Image.open(path).convert("L")) != 0)
    assert read_mask(path).any() and not read_mask(path).all()


def test_eval_detects_the_official_conventions_and_prints_the_same_numbers(data, ours, tmp_path, capsys) -> None:
    assert detect_format(data.results, data.dataset) == "cityscapes"
    out = tmp_path / "r.json"
    assert main(["eval", "--pred", str(data.results), "--gt", str(data.dataset), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "instance (Cityscapes)" in text and "panoptic" in text and "semantic" in text
    saved = json.loads(out.read_text())
    assert saved["format"] == "cityscapes"
    assert saved["semantic"]["mIoU"] == ours["semantic"]["mIoU"]
    assert saved["panoptic"]["All"]["pq"] == ours["panoptic"]["All"]["pq"]


def test_one_task_folder_is_evaluated_alone(data) -> None:
    res = evaluate_official_results(data.results / "panoptic", data.dataset)
    assert "panoptic" in res and "semantic" not in res and "instance" not in res


def test_results_writer_output_is_taken_by_the_official_scripts_as_is(data, tmp_path) -> None:
    """Our own maps, written by ResultsWriter, give the official scripts the numbers our own
    convention gives (evaluate_paths on <stem>_classes.png etc.)."""
    rng = np.random.default_rng(5)
    own = tmp_path / "own"
    own.mkdir()
    writer = ResultsWriter(tmp_path / "results")
    for stem, fr in zip(data.stems, data.frames):
        sem, imap, scores, pan = _predict(fr, rng)
        writer.write(stem, sem, imap, scores, pan)
        cv2.imwrite(str(own / f"{stem}_classes.png"), sem.astype(np.uint8))
        cv2.imwrite(str(own / f"{stem}_instances.png"), imap)
        (own / f"{stem}_instances.json").write_text(json.dumps({str(k): v for k, v in scores.items()}))
        cv2.imwrite(str(own / f"{stem}_panoptic.png"), pan)
    writer.close()
    assert detect_format(own, data.dataset) == "seg_perception"
    assert detect_format(tmp_path / "results", data.dataset) == "cityscapes"
    mine = evaluate_paths(own, data.dataset, None, out=None)
    res = tmp_path / "results"
    px = run_official("evalPixelLevelSemanticLabeling", data.dataset, res / "semantic", tmp_path / "w_px")
    assert same(px["averageScoreClasses"], mine["semantic"]["mIoU"])
    inst = run_official("evalInstanceLevelSemanticLabeling", data.dataset, res / "instance", tmp_path / "w_in")
    assert same(inst["averages"]["allAp"], mine["instance"]["cityscapes"]["AP"])
    pq = run_official("evalPanopticSemanticLabeling", data.dataset, res / "panoptic", tmp_path / "w_pq")
    assert same(pq["All"]["pq"], mine["panoptic"]["All"]["pq"])
    # and our reader of the official conventions agrees on the same files
    again = evaluate_official_results(res, data.dataset)
    assert again["semantic"]["mIoU"] == mine["semantic"]["mIoU"]
    assert same(again["instance"]["cityscapes"]["AP"], mine["instance"]["cityscapes"]["AP"])
    assert again["panoptic"]["All"] == mine["panoptic"]["All"]


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("no results", "no predictions"),
        ("semantic missing for a frame", "found no semantic result for ground truth synth_000000_000004"),
        ("two semantic results for a frame", "several semantic results"),
        ("mask outside the results", "outside the results folder"),
        ("malformed txt line", "expected '<mask png> <label id> <confidence>'"),
        ("panoptic image missing", "no prediction for the image with id synth_000000_000004"),
        ("segment only in the png", "is in the PNG and not in the json"),
        ("both conventions", "both our prediction files"),
    ],
)
def test_bad_official_results_are_one_line_errors(data, tmp_path: Path, case: str, pattern: str) -> None:
    pred = tmp_path / "pred"
    last = data.stems[-1]
    if case == "no results":
        pred.mkdir()
    elif case.startswith(("semantic", "two semantic")):
        shutil.copytree(data.results / "semantic", pred)
        sem = pred / "synth" / f"{last}_leftImg8bit.png"
        if case == "two semantic results for a frame":
            shutil.copy(sem, sem.with_name(f"{last}_other.png"))
        else:
            sem.unlink()
    elif case in ("mask outside the results", "malformed txt line"):
        shutil.copytree(data.results / "instance", pred)
        txt = pred / f"{last}_leftImg8bit_pred.txt"
        line = "../elsewhere.png 26 0.5" if case == "mask outside the results" else "masks/a.png 26"
        txt.write_text(txt.read_text() + line + "\n")
    elif case in ("panoptic image missing", "segment only in the png"):
        shutil.copytree(data.results / "panoptic", pred)
        js = pred / "cityscapes_panoptic_val.json"
        doc = json.loads(js.read_text())
        if case == "panoptic image missing":
            doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != last]
        else:
            doc["annotations"][-1]["segments_info"].pop()
        js.write_text(json.dumps(doc))
    elif case == "both conventions":
        shutil.copytree(data.results / "instance", pred)
        cv2.imwrite(str(pred / f"{last}_classes.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match=pattern) as err:
        detect_format(pred, data.dataset)
        evaluate_official_results(pred, data.dataset)
    assert "\n" not in str(err.value)


def test_eval_cli_refuses_bad_official_results_with_one_line_and_exit_2(data, tmp_path: Path, capsys) -> None:
    shutil.copytree(data.results / "semantic", tmp_path / "pred")
    (tmp_path / "pred" / "synth" / f"{data.stems[0]}_leftImg8bit.png").unlink()
    argv = ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(data.dataset), "--format", "cityscapes"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "found no semantic result for ground truth synth_000000_000000" in err


def test_segment_cityscapes_results_are_taken_by_the_official_script_as_is(data, tmp_path: Path, capsys) -> None:
    """`segment --format cityscapes` on the dataset's leftImg8bit images (shipped weights):
    the official pixel-level script, pointed at the output folder, finds one prediction per
    frame and scores it as `eval` does."""
    out = tmp_path / "seg"
    images = data.dataset / "leftImg8bit"
    argv = ["segment", str(images), "--out", str(out), "--format", "cityscapes", "-p", "backend=torch"]
    assert main([*argv, "-p", "device=cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{s}_pred_labelIds.png" for s in data.stems]
    off = run_official("evalPixelLevelSemanticLabeling", data.dataset, out, tmp_path / "w_px")
    capsys.readouterr()
    assert main(["eval", "--pred", str(out), "--gt", str(data.dataset), "--json", str(tmp_path / "r.json")]) == 0
    sem = json.loads((tmp_path / "r.json").read_text())["semantic"]
    assert same(sem["mIoU"], off["averageScoreClasses"]) and same(sem["miIoU"], off["averageScoreInstClasses"])
    assert sem["mIoU"] > 0.2  # the shipped weights segment generated scenes
