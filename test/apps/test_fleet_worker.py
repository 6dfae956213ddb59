"""The fleet's model worker in this process (no Ray): frames run in pairs where class maps are
all the models write, with the class maps of frames run alone; a frame that does not decode, or
that the models fail on, is its own error; scoring in the worker gives what the score stage gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from seg_perception.apps.fleet.frames import FRAME, read_drive
from seg_perception.apps.fleet.models import ModelSet, ModelWorker
from seg_perception.apps.fleet.records import unpack
from seg_perception.apps.fleet.scoring import ScoreOptions, score_batch
from seg_perception.apps.replay_models import single_threaded_models
from seg_perception.config.records import node_defaults
from seg_perception.io import bags
from seg_perception.labels import load_label_set
from seg_perception.pipeline.perception import PerceptionCore
from seg_perception.synthetic.frames import generate_drive
from seg_perception.synthetic.writers import write_drive_bag

SMALL = {"semantic.backend": "torch", "semantic.device": "cpu", "semantic.input_height": 128}
SMALL |= {"semantic.input_width": 256, "instance.device": "cpu", "instance.input_height": 128}
SMALL |= {"instance.input_width": 256}
BROKEN = 2  # this frame's CDR is cut short


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A Ray Data batch as the read stage gives it: one 6-frame drive, one frame broken."""
    drive = generate_drive(11, 6, 320, 192, fps=10.0, condition="day")
    path = write_drive_bag(tmp_path_factory.mktemp("drive") / "d", drive, fps=10.0, storage="mcap")
    rows = list(read_drive({"drive": 0, "path": str(path), "condition": "day"}))
    columns = {key: np.empty(len(rows), object) for key in rows[0]}
    for i, row in enumerate(rows):
        for key, value in row.items():
            columns[key][i] = value
    columns["raw"][BROKEN] = columns["raw"][BROKEN][:64]
    return columns


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return node_defaults("perception") | SMALL


def test_semantic_frames_run_in_pairs_with_the_class_maps_of_frames_run_alone(
    batch: dict[str, Any], params: dict[str, Any]
) -> None:
    with single_threaded_models(True):
        worker = ModelWorker([ModelSet("m", params, ("semantic",))], threads=1)
        assert worker.frames_per_run == 2
        out = worker(dict(batch))
        alone = PerceptionCore.from_params(params, ["semantic"])
        frames = [i for i, kind in enumerate(batch["kind"]) if kind == FRAME]
        assert len(frames) == 6
        for i in frames:
            if i == BROKEN:
                assert out["error"][i].startswith("bad frame: malformed"), out["error"][i]
                assert out["pred"][i] == b""
                continue
            _, image = bags.decode_frame(batch["raw"][i], batch["msgtype"][i])
            expected = alone.run([image])[0].semantic
            assert expected is not None
            got = unpack(out["pred"][i]).outputs[0].class_map
            assert np.array_equal(got, expected.class_map), f"frame {i}"
            assert out["latency_ms"][i] > 0 and out["raw"][i] == b""


class FailsOnOneFrame:
    """The models, failing on one frame as a model may on a frame it cannot take: the one
    fault a test cannot make the real models raise on demand."""

    def __init__(self, core: PerceptionCore, pixels: np.ndarray) -> None:
        self.core, self.pixels = core, pixels

    def run(self, images: list[Any], **kwargs: Any) -> Any:
        if any(np.array_equal(np.asarray(image.pixels), self.pixels) for image in images):
            raise RuntimeError("the model cannot take this frame")
        return self.core.run(images, **kwargs)


def test_a_frame_the_models_fail_on_is_its_own_error_and_its_pair_keeps_its_outputs(
    batch: dict[str, Any], params: dict[str, Any]
) -> None:
    in_order = [i for i, kind in enumerate(batch["kind"]) if kind == FRAME]
    frames = [i for i in in_order if i != BROKEN]
    faulty, partner = frames[-2], frames[-1]
    assert in_order.index(faulty) % 2 == 0 and in_order[in_order.index(faulty) + 1] == partner  # run as a pair
    _, image = bags.decode_frame(batch["raw"][faulty], batch["msgtype"][faulty])
    with single_threaded_models(True):
        worker = ModelWorker([ModelSet("m", params, ("semantic",))], threads=1)
        alone = PerceptionCore.from_params(params, ["semantic"])
        worker.cores = [FailsOnOneFrame(worker.cores[0], np.asarray(image.pixels).copy())]  # type: ignore[list-item]
        out = worker(dict(batch))
    assert worker.frames_per_run == 2
    assert out["error"][faulty] == "models failed: RuntimeError: the model cannot take this frame"
    assert out["pred"][faulty] == b""
    for i in frames:
        if i != faulty:
            assert out["error"][i] == "", (i, out["error"][i])
            expected = alone.run([bags.decode_frame(batch["raw"][i], batch["msgtype"][i])[1]])[0].semantic
            assert expected is not None
            assert np.array_equal(unpack(out["pred"][i]).outputs[0].class_map, expected.class_map), i


def test_frames_run_one_at_a_time_where_the_models_write_more_than_class_maps(params: dict[str, Any]) -> None:
    with single_threaded_models(True):
        assert ModelWorker([ModelSet("m", params, ("semantic", "instance"))], threads=1).frames_per_run == 1


def test_scoring_in_the_worker_gives_what_the_score_stage_gives(batch: dict[str, Any], params: dict[str, Any]) -> None:
    options = ScoreOptions(load_label_set("cityscapes"), keep_predictions=True)
    model_sets = [ModelSet("m", params, ("semantic",))]
    with single_threaded_models(True):
        in_worker = ModelWorker(model_sets, threads=1, messages=True, score=options)(dict(batch))
        staged = score_batch(ModelWorker(model_sets, threads=1, messages=True)(dict(batch)), options)
    scored_rows = [kind == FRAME and i != BROKEN for i, kind in enumerate(batch["kind"])]
    assert [bool(e) for e in in_worker["evals"]] == scored_rows
    for column in ("evals", "stats", "panel", "error"):
        assert list(in_worker[column]) == list(staged[column]), column
    # The driver gets the output messages, and no class maps it would not use.
    for packed in (in_worker["pred"][0], staged["pred"][0]):
        prediction = unpack(packed)
        assert prediction.outputs == () and [m[0] for m in prediction.messages] == ["semantic/class_map"]
    assert list(in_worker["gt_label_ids"]) == [b""] * len(batch["kind"])
