"""The typed run state: a state.json written before the results were typed reads, resumes and
rewrites field for field, and the round policy takes the decisions recorded in it."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from support import REPO

from hand_pose_refiner.config import load_config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.refine import LabelledSet, Refinement, RefineSettings
from hand_pose_refiner.refinement.rounds import RoundPolicy
from hand_pose_refiner.refinement.run_state import (
    STATE_FILE,
    EvaluateResult,
    FineTuneResult,
    RunState,
    read_state,
    write_state,
)

# Written by `refine` (state format 4) before the run state was typed: two rounds on four bare-hand
# stills, two anchor and two check stills, PCK on the OneHand10K test images; the input folders
# renamed to /data/... afterwards.
FIXTURE = REPO / "test" / "data" / "refine_state_format4.json"


def fixture_options() -> RefineSettings:
    """The options the fixture's run was made with."""

    def stills(name: str) -> tuple[InputSpec, ...]:
        return (InputSpec(Path(f"/data/cell/{name}"), stills=True),)

    labelled = LabelledSet(Path("/data/shared/labelled_hands/onehand10k/test_onehand10k.json"))
    return RefineSettings(targets=stills("stills"), checks=stills("check"), anchors=stills("anchor"),
                         labelled=(labelled,), iterations=2, epochs=1, detector_epochs=1, batch_size=4,
                         samples_per_image=1, patience=2)


def test_a_state_written_before_the_typed_state_reads_and_writes_back_field_for_field(tmp_path):
    raw = json.loads(FIXTURE.read_text())
    state = read_state(FIXTURE)
    assert state.to_json() == raw
    write_state(tmp_path / STATE_FILE, state)
    assert (tmp_path / STATE_FILE).read_text() == FIXTURE.read_text()  # the same file, byte for byte
    assert [step.name for step in state.steps] == [
        "iter0/evaluate", "iter0/anchor_labels", "iter1/pseudo_labels", "iter1/detector", "iter1/estimator",
        "iter1/evaluate", "iter2/pseudo_labels", "iter2/detector", "iter2/estimator", "iter2/evaluate"]
    assert state.evaluated_rounds() == [0, 1, 2]
    initial = state.evaluation(0)
    assert isinstance(initial, EvaluateResult) and initial.pck is not None and initial.checks is not None
    assert initial.measure == raw["steps"][0]["result"]["measure"] == 1.0
    assert initial.pck.hands == 4 and initial.checks.frames == 2
    assert [item.path for item in initial.targets.inputs] == ["/data/cell/stills"]
    anchors = state.anchor_labels()
    assert anchors is not None and anchors.zoomed_copies == 4 and anchors.replay.accepted_hands == 4
    pseudo = state.pseudo_labels(2)
    assert pseudo is not None and pseudo.models_from == 1 and pseudo.thresholds is not None
    assert pseudo.thresholds == fixture_options().thresholds(2)
    estimator = state.fine_tune(1, "estimator")
    assert isinstance(estimator, FineTuneResult) and estimator.training is not None
    assert estimator.epoch_kept == 1 and estimator.epoch_pck == [1.0]
    assert estimator.weights == "iter1/estimator.safetensors" and estimator.skipped is None
    assert state.finished and state.best_iteration == 0
    assert state.best_models == {"detector": "pretrained", "estimator": "pretrained"}


def test_the_round_policy_takes_the_decisions_the_state_records():
    state = read_state(FIXTURE)
    options = fixture_options()
    policy = RoundPolicy(state.measures(), options.max_pck_drop, options.max_check_drop,
                         options.min_improvement, options.patience)
    assert policy.best_iteration(options.iterations) == state.best_iteration
    assert policy.stop_reason(2) == state.stopped_because
    assert [policy.base_iteration(k) for k in (1, 2)] == [
        pseudo.models_from for pseudo in (state.pseudo_labels(1), state.pseudo_labels(2)) if pseudo]


def test_a_finished_run_folder_of_the_same_format_resumes_without_running_a_step(tmp_path):
    options = fixture_options()
    assert options.identity() == read_state(FIXTURE).options  # the options' identity is unchanged
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURE, run / STATE_FILE)
    refinement = Refinement(run, options, load_config(None))
    state = refinement.run()  # no input folder, model or labelled set exists here: nothing may run
    assert json.loads((run / STATE_FILE).read_text()) == json.loads(FIXTURE.read_text())
    assert state.best_iteration == 0 and refinement.model_paths(0) == (None, None)


def test_a_state_written_by_hand_reads_what_it_has_and_defaults_the_rest(tmp_path):
    data = {"format": 4, "options": {}, "steps": [
        {"name": "iter0/evaluate", "result": {"measure": None, "pck": {"pck": 0.5}}},
        {"name": "iter1/pseudo_labels", "result": {"models_from": 0}},
        {"name": "iter1/detector", "result": {"weights_from": 0, "train_images": 0, "train_hands": 0,
                                              "skipped": "no pseudo-labelled hands"}}]}
    state = RunState.from_json(data)
    initial = state.evaluation(0)
    assert initial is not None and initial.targets.inputs == [] and initial.checks is None
    assert math.isnan(state.measures()[0].measure) and state.measures()[0].pck == 0.5
    detector = state.fine_tune(1, "detector")
    assert detector is not None and detector.training is None and detector.skipped
    assert state.fine_tune(1, "estimator") is None and not state.finished
    path = tmp_path / STATE_FILE
    path.write_text(json.dumps({**data, "steps": [{"name": "iter1/elsewhere", "result": {}}]}))
    with pytest.raises(RefinementStateError, match="not a refinement state"):
        read_state(path)
    path.write_text(json.dumps({**data, "format": 3}))
    with pytest.raises(RefinementStateError, match="older version"):
        read_state(path)
    assert read_state(path, any_format=True).pseudo_labels(1) is not None


def test_a_run_folder_recorded_before_an_input_setting_existed_resumes_with_it_at_its_default(tmp_path):
    """A state whose inputs lack ``offset`` (added to InputSpec later) resumes; one whose inputs
    differ in a setting they record is still refused."""
    options = fixture_options()
    recorded = json.loads(FIXTURE.read_text())
    specs = [spec for role in ("targets", "checks", "anchors") for spec in recorded["options"].get(role, [])]
    assert specs and all(spec.pop("offset") == 0 for spec in specs)
    run = tmp_path / "run"
    run.mkdir()
    (run / STATE_FILE).write_text(json.dumps(recorded))
    state = Refinement(run, options, load_config(None)).run()
    assert state.best_iteration == 0
    other = tuple(replace(spec, stride=spec.stride + 1) for spec in options.targets)
    stride = replace(options, targets=other)
    with pytest.raises(RefinementStateError, match="made with other options"):
        Refinement(run, stride, load_config(None))
