"""The threshold sweep over one round's models on the gloved stills
(bench/gloved_operating_points.py runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import REPO

from hand_pose_refiner.config import load_config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement import operating_points

CELL_CONFIG = REPO / "config" / "glovebox.yaml"


def _run(tmp_path: Path, best: int | None, rounds: tuple[int, ...]) -> Path:
    (tmp_path / "state.json").write_text(json.dumps({"best_iteration": best}))
    for k in rounds:
        folder = tmp_path / f"iter{k}"
        folder.mkdir()
        for name in ("detector.safetensors", "estimator.safetensors"):
            (folder / name).write_bytes(b"")
    return tmp_path


def test_the_kept_round_by_default_and_any_round_on_request(tmp_path):
    run = _run(tmp_path, best=2, rounds=(1, 2))
    assert operating_points.round_models(run, None) == (2, run / "iter2/detector.safetensors",
                                             run / "iter2/estimator.safetensors")
    assert operating_points.round_models(run, 1)[0] == 1
    assert operating_points.round_models(run, 0) == (0, None, None)  # the config's own models


def test_an_unfinished_run_or_a_round_without_weights_is_refused(tmp_path):
    run = _run(tmp_path, best=None, rounds=(1,))
    with pytest.raises(RefinementStateError, match="has not finished"):
        operating_points.round_models(run, None)
    with pytest.raises(FileNotFoundError, match="iter3"):
        operating_points.round_models(run, 3)


def test_a_setting_changes_the_three_thresholds_and_the_weights_only(tmp_path):
    base = load_config(CELL_CONFIG)
    detector, estimator = tmp_path / "d.safetensors", tmp_path / "e.safetensors"
    config = operating_points.setting_config(base, detector, estimator, 0.35, 0.4, 0.3)
    assert (config.mediapipe.detector_tile_size, config.models.detection_score_threshold,
            config.spatial_filter.min_hand_score) == (0.35, 0.4, 0.3)
    weights = (config.models.detector_checkpoint, config.models.pose_checkpoint)
    assert weights == (str(detector), str(estimator))
    assert config.spatial_filter.min_keypoints == base.spatial_filter.min_keypoints
    assert config.recurring_objects == base.recurring_objects
    initial = operating_points.setting_config(base, None, None, 0.5, 0.5, 0.5)
    assert initial.models.detector_checkpoint == base.models.detector_checkpoint
