"""The refinement loop: checkpointed steps, resume after a kill, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import cv2
import pytest
import torch
from support import REPO

from hand_pose_refiner.cli import main
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames


def _stills(clip, folder, count):
    for frame in read_frames(InputSpec(clip, stride=10, max_frames=count)):
        cv2.imwrite(str(folder / f"f{frame.index}.jpg"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def tiny_stills(shared_data, tmp_path_factory):
    """Six real frames of a bare-hand clip, as an image folder."""
    return _stills(shared_data / "bare_hand_clips" / "hands2.webm", tmp_path_factory.mktemp("stills"), 6)


@pytest.fixture(scope="module")
def tiny_anchor(shared_data, tmp_path_factory):
    """Three real frames of another bare-hand clip: the anchor recording."""
    return _stills(shared_data / "bare_hand_clips" / "hands3.webm", tmp_path_factory.mktemp("anchor"), 3)


def refine_args(stills, anchor, shared_data, out, *extra):
    labelled = shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json"
    return ["refine", str(stills), "--stills", "--out", str(out), "--iterations", "2", "--epochs", "1",
            "--detector-epochs", "1", "--train-batch-size", "4", "--samples-per-image", "1",
            "--device", "cpu", "--threads", "1", "--quiet", "--patience", "2", "--labelled", str(labelled),
            "--anchor", str(anchor), *extra]


def outcome(run_dir):
    """What must not depend on interruptions: every step's result minus timings, and the weights."""
    state = json.loads((run_dir / "state.json").read_text())

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("seconds", "frames_per_s", "out", "inference_seconds", "filter_seconds",
                                 "sha256")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [(s["name"], strip(s["result"])) for s in state["steps"]], state["best_iteration"]


def same(a, b, tolerance=0.02):
    """Equal structure, counts and names; floats (losses, PCK, confidences) within ``tolerance``.

    Fine-tuning on CPU is not bit-reproducible from one process to the next, so weights trained
    after the interruption may differ in the last bits from the uninterrupted run's.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], tolerance) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= tolerance * max(1.0, abs(a))
    return a == b


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_result(tiny_stills, tiny_anchor,
                                                                            shared_data, tmp_path):
    reference = tmp_path / "reference"
    assert main(refine_args(tiny_stills, tiny_anchor, shared_data, reference)) == 0
    expected = outcome(reference)
    names = [name for name, _ in expected[0]]
    assert names == ["iter0/evaluate", "iter0/anchor_labels", "iter1/pseudo_labels", "iter1/detector",
                     "iter1/estimator", "iter1/evaluate", "iter2/pseudo_labels", "iter2/detector",
                     "iter2/estimator", "iter2/evaluate"]
    results = dict(expected[0])
    anchored = results["iter0/anchor_labels"]["frames_with_hands"]
    zoomed = results["iter0/anchor_labels"]["zoomed_copies"]
    assert anchored == 3 and zoomed == results["iter0/anchor_labels"]["accepted_hands"] >= 3
    for k in (1, 2):  # every round trains on its pseudo-labels and 3 times as many anchor images
        pseudo = results[f"iter{k}/pseudo_labels"]["frames_with_hands"]
        share = round(3 * pseudo / 2)
        assert pseudo >= 1
        trained = pseudo + min(anchored, share) + min(zoomed, share)
        assert results[f"iter{k}/detector"]["train_images"] == trained
        assert results[f"iter{k}/estimator"]["train_images"] == trained

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "hand_pose_refiner.cli",
               *refine_args(tiny_stills, tiny_anchor, shared_data, killed)]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state_file = killed / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state_file.is_file() and len(json.loads(state_file.read_text())["steps"]) >= 2:
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = len(json.loads(state_file.read_text())["steps"])
    assert 2 <= recorded < len(names), "killed mid-run"

    assert main(refine_args(tiny_stills, tiny_anchor, shared_data, killed)) == 0
    assert same(outcome(killed), expected)
    before_kill = outcome(killed)[0][:recorded]
    assert before_kill == expected[0][:recorded]  # steps finished before the kill: kept as they were
    for name in ("report.html", "report.json", "report_figures/metrics.png",
                 "report_figures/overlay_grid_1.png"):
        assert (killed / name).is_file()
    report = json.loads((killed / "report.json").read_text())
    assert [row["iteration"] for row in report["iterations"]] == [0, 1, 2]
    assert report["iterations"][0]["pck"] > 0.9 and report["iterations"][0]["detection_rate"] == 1.0
    assert all("rejections" in row for row in report["iterations"])
    assert results["iter1/pseudo_labels"]["models_from"] == 0
    for k in (1, 2):  # the pose estimator's kept epoch is the one the evaluation scores
        estimator = results[f"iter{k}/estimator"]
        kept = estimator["epoch_kept"]
        assert len(estimator["epoch_pck"]) == 1 and kept == 1
        assert estimator["epoch_pck"][kept - 1] == results[f"iter{k}/evaluate"]["pck"]["pck"]
    for k in (1, 2):  # as recorded: the detector from the pseudo-labels' models, the pose from round 0
        models_from = results[f"iter{k}/pseudo_labels"]["models_from"]
        assert results[f"iter{k}/detector"]["weights_from"] == models_from
        assert results[f"iter{k}/estimator"]["weights_from"] == 0
    assert [row["models_from"] for row in report["iterations"][1:]] == [
        results[f"iter{k}/pseudo_labels"]["models_from"] for k in (1, 2)]
    assert not list(killed.rglob("*.partial"))

    # Resuming a finished run does nothing new; resuming with other settings is refused.
    finished = outcome(killed)
    assert main(refine_args(tiny_stills, tiny_anchor, shared_data, killed)) == 0
    assert outcome(killed) == finished
    with pytest.raises(RefinementStateError):
        from hand_pose_refiner.cli import build_parser

        args = build_parser().parse_args(refine_args(tiny_stills, tiny_anchor, shared_data, killed,
                                                     "--epochs", "2"))
        args.handler(args)


def test_a_run_folder_of_another_format_or_other_options_is_refused(tmp_path):
    from hand_pose_refiner.config import load_config
    from hand_pose_refiner.refinement.refine import STATE_FORMAT, Refinement, RefineSettings

    options = RefineSettings(targets=(InputSpec(REPO),))
    identity = options.identity()
    assert "iterations" not in identity  # a run may be resumed with more rounds
    assert identity["search_rounds"] == 0 and identity["anchors"] == [] and identity["detector_epochs"] == 12
    config = load_config(None)
    Refinement(tmp_path / "run", options, config)  # a new folder: created
    Refinement(tmp_path / "run", replace(options, iterations=5), config)  # same identity: resumed
    with pytest.raises(RefinementStateError, match="other options"):
        Refinement(tmp_path / "run", replace(options, search_rounds=1), config)
    old = tmp_path / "old"
    old.mkdir()
    older = {"format": STATE_FORMAT - 1, "options": identity, "steps": []}
    (old / "state.json").write_text(json.dumps(older))
    with pytest.raises(RefinementStateError, match="older version"):
        Refinement(old, options, config)


def test_a_round_starts_from_the_best_round_before_it_not_from_a_failed_one(tmp_path):
    from hand_pose_refiner.config import load_config
    from hand_pose_refiner.refinement.refine import STATE_FORMAT, Refinement, RefineSettings

    options = RefineSettings(targets=(InputSpec(REPO),), iterations=4, patience=3, max_pck_drop=0.02)

    def evaluated(measure, pck):
        return {"measure": measure, "pck": {"pck": pck}}

    steps = [("iter0/evaluate", evaluated(0.02, 1.0)), ("iter1/evaluate", evaluated(0.30, 1.0)),
             ("iter2/evaluate", evaluated(0.50, 0.80)),  # more hands, but a labelled hand lost
             ("iter3/evaluate", evaluated(0.30, 0.99)), ("iter4/evaluate", evaluated(0.10, 1.0))]
    run = tmp_path / "run"
    run.mkdir()
    state = {"format": STATE_FORMAT, "options": options.identity(),
             "steps": [{"name": name, "result": result} for name, result in steps]}
    (run / "state.json").write_text(json.dumps(state))
    refinement = Refinement(run, options, load_config(None))
    # round 3 skips the failed round 2; round 4 takes the later of the tied rounds 1 and 3;
    # round 5 skips round 4, which fell back
    assert [refinement.base_iteration(k) for k in range(1, 6)] == [0, 1, 1, 3, 3]
    # the result is the earliest of the best acceptable rounds (1 and 3 tie at 0.30)
    assert refinement.best_iteration() == 1
    assert refinement.acceptable(3) and refinement.regression(2).startswith("PCK")
    # by default PCK may not fall at all: round 3's 0.99 is rejected too
    strict = replace(options, max_pck_drop=RefineSettings.max_pck_drop)
    assert strict.max_pck_drop == 0.0
    state["options"] = strict.identity()
    (run / "state.json").write_text(json.dumps(state))
    refinement = Refinement(run, strict, load_config(None))
    assert [refinement.acceptable(k) for k in range(5)] == [True, True, False, False, True]
    assert [refinement.base_iteration(k) for k in range(1, 6)] == [0, 1, 1, 1, 1]


def test_the_pose_estimator_starts_from_the_initial_weights_and_the_detector_from_the_pseudo_labels_models(
        tmp_path):
    from hand_pose_refiner.config import load_config
    from hand_pose_refiner.refinement.refine import STATE_FORMAT, Refinement, RefineSettings

    def run_folder(name, options):
        steps = [("iter0/evaluate", {"measure": 0.1}), ("iter1/pseudo_labels", {"models_from": 0}),
                 ("iter1/evaluate", {"measure": 0.3}), ("iter2/pseudo_labels", {"models_from": 1})]
        run = tmp_path / name
        run.mkdir()
        state = {"format": STATE_FORMAT, "options": options.identity(),
                 "steps": [{"name": step, "result": result} for step, result in steps]}
        (run / "state.json").write_text(json.dumps(state))
        return Refinement(run, options, load_config(None))

    options = RefineSettings(targets=(InputSpec(REPO),), iterations=3)
    assert options.pose_from_initial
    fresh = run_folder("fresh", options)
    assert [fresh.weights_from(k, "detector") for k in (1, 2)] == [0, 1]
    assert [fresh.weights_from(k, "estimator") for k in (1, 2)] == [0, 0]
    chained = run_folder("chained", replace(options, pose_from_initial=False))
    assert [chained.weights_from(k, "estimator") for k in (1, 2)] == [0, 1]


def test_the_pose_estimator_keeps_its_last_epoch_that_keeps_pck():
    from hand_pose_refiner.refinement.refine import RefineSettings, last_epoch_keeping

    assert RefineSettings(targets=(InputSpec(REPO),)).keep_pck_epoch
    assert last_epoch_keeping([1.0, 1.0], 1.0) == 2
    assert last_epoch_keeping([1.0, 0.992], 1.0) == 1  # the second epoch lost a keypoint
    assert last_epoch_keeping([0.99, 1.0, 0.98], 1.0) == 2
    assert last_epoch_keeping([0.99, 0.98], 1.0) == 2  # none keeps it: the last (the round fails its check)
    assert last_epoch_keeping([0.99, 0.98], 0.985) == 1
