"""The deploy handoff: a finished refine writes RUN/deploy.yaml, and the live backend built from it
runs the kept round's models exactly as the round's evaluation did."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from support import tiny_refine_args

from hand_pose_refiner.cli import build_parser, main
from hand_pose_refiner.config import RefinementConfig, load_config
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.cli import recipe_config
from hand_pose_refiner.refinement.deploy import DEPLOY_FILE, deploy_config, write_deploy
from hand_pose_refiner.refinement.recipe import refine_options
from hand_pose_refiner.refinement.refine import Refinement, round_weights


@pytest.fixture(scope="module")
def finished_run(tiny_refine_run):
    """The conftest's one-round refine, with its Refinement as the recipe of its command line reads it."""
    out, stills = tiny_refine_run["out"], tiny_refine_run["stills"]
    config = recipe_config(build_parser().parse_args(tiny_refine_args(stills, out)))
    return {**tiny_refine_run, "refinement": Refinement(out, refine_options(config.refinement), config)}


def test_refine_writes_the_kept_rounds_parameter_file_and_prints_how_to_use_it(finished_run):
    out, refinement = finished_run["out"], finished_run["refinement"]
    kept = refinement.state.best_iteration
    deploy = Path(os.path.abspath(out / DEPLOY_FILE))
    printed = finished_run["printed"]
    assert f"kept round {kept}" in printed
    assert f"ros2 launch hand_pose_refiner assembly.launch.py config_file:={deploy}\n" in printed
    assert f"hand-pose-refiner run --config {deploy}\n" in printed
    text = deploy.read_text()
    body = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert "refinement" not in body  # offline only: the nodes neither declare nor read it
    detector, pose = refinement.model_paths(kept)
    models = load_config(deploy).models
    if kept:
        assert Path(models.detector_checkpoint).is_absolute()
        assert models.detector_checkpoint == str(detector.resolve())
        assert models.pose_checkpoint == str(pose.resolve())
    else:
        assert "Kept: round 0, the initial models" in text and models.detector_checkpoint == ""
    assert load_config(deploy) == replace(refinement.config, models=models, refinement=RefinementConfig())
    assert main(["config", "check", "--config", str(deploy)]) == 0


def test_the_live_backend_from_deploy_yaml_detects_as_the_rounds_evaluation(finished_run, tmp_path):
    refinement = finished_run["refinement"]
    assert refinement.state.fine_tune(1, "detector").train_images > 0  # the detector was fine-tuned
    deployment = write_deploy(tmp_path, refinement.config, 1, round_weights(refinement.run_dir, 1))
    assert "Kept: round 1, its detector and pose estimator" in deployment.path.read_text()
    live_detector, live_estimator = create_backend(load_config(deployment.path))
    evaluated_detector, evaluated_estimator = refinement.models(1)
    assert live_detector.net.kept_heads is not None  # the kept heads came with the checkpoint
    live_state, evaluated_state = live_detector.net.state_dict(), evaluated_detector.net.state_dict()
    assert live_state.keys() == evaluated_state.keys()
    assert all(torch.equal(live_state[k], evaluated_state[k]) for k in live_state)
    on_cpu = replace(refinement.config, models=replace(refinement.config.models, device="cpu"))
    initial_state = create_backend(on_cpu)[0].net.state_dict()
    assert any(not torch.equal(initial_state[k], live_state[k]) for k in initial_state)  # it was refined
    image = cv2.cvtColor(cv2.imread(str(sorted(finished_run["stills"].glob("*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    live, evaluated = live_detector.detect([image])[0], evaluated_detector.detect([image])[0]
    assert len(evaluated.boxes) >= 1
    np.testing.assert_array_equal(live.boxes, evaluated.boxes)
    np.testing.assert_array_equal(live.scores, evaluated.scores)
    live_hands = live_estimator.estimate([image], [live])[0]
    evaluated_hands = evaluated_estimator.estimate([image], [evaluated])[0]
    np.testing.assert_array_equal(live_hands.keypoints, evaluated_hands.keypoints)


def test_round_zero_leaves_the_backend_defaults_and_says_so(finished_run, tmp_path):
    config = finished_run["refinement"].config
    deployment = write_deploy(tmp_path, config, 0, (None, None))
    assert "Kept: round 0, the initial models" in deployment.path.read_text()
    models = load_config(deployment.path).models
    assert models.detector_checkpoint == "" and models.pose_checkpoint == ""
    assert deployment.config == deploy_config(config, (None, None))


def test_config_check_names_a_checkpoint_that_is_missing_or_does_not_load(finished_run, tmp_path, capsys):
    detector, _ = round_weights(finished_run["out"], 1)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(detector.read_bytes()[:4000])
    cases = (("models:\n  detector_checkpoint", tmp_path / "none.safetensors", "no such file"),
             ("models:\n  pose_checkpoint", truncated, "does not load"),
             ("models:\n  pose_checkpoint", detector, "does not load"),  # a detector's weights
             ("activity:\n  checkpoint", truncated, "does not load"))
    for key, value, problem in cases:
        path = tmp_path / "cell.yaml"
        path.write_text(f"{key}: {value}\n")
        assert main(["config", "check", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        name = key.replace(":\n  ", ".")
        assert len(err) == 1 and f"{name} = '{value}': {problem}" in err[0] and "Traceback" not in err[0]
    path.write_text(f"models:\n  detector_checkpoint: {detector}\n")
    assert main(["config", "check", "--config", str(path)]) == 0


def test_a_relative_activity_checkpoint_is_written_absolute(finished_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = finished_run["refinement"].config
    named = replace(config, activity=replace(config.activity, checkpoint="models/reach.safetensors"))
    deployed = deploy_config(named, (None, None))
    assert deployed.activity.checkpoint == str(tmp_path / "models" / "reach.safetensors")
    assert deploy_config(config, (None, None)).activity.checkpoint == ""  # empty: the packaged model
