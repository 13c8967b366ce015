"""The threshold sweep over one round's models on the gloved stills (bench/gloved_operating_points.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from hand_pose_refiner.config import load_config

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gloved_operating_points.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("gloved_operating_points", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, best: int | None, rounds: tuple[int, ...]) -> Path:
    (tmp_path / "state.json").write_text(json.dumps({"best_iteration": best}))
    for k in rounds:
        folder = tmp_path / f"iter{k}"
        folder.mkdir()
        for name in ("detector.safetensors", "estimator.safetensors"):
            (folder / name).write_bytes(b"")
    return tmp_path


def test_the_kept_round_by_default_and_any_round_on_request(sweep, tmp_path):
    run = _run(tmp_path, best=2, rounds=(1, 2))
    assert sweep.round_models(run, None) == (2, run / "iter2/detector.safetensors",
                                             run / "iter2/estimator.safetensors")
    assert sweep.round_models(run, 1)[0] == 1
    assert sweep.round_models(run, 0) == (0, None, None)  # the config's own models


def test_an_unfinished_run_or_a_round_without_weights_is_refused(sweep, tmp_path):
    run = _run(tmp_path, best=None, rounds=(1,))
    with pytest.raises(SystemExit, match="give --round"):
        sweep.round_models(run, None)
    with pytest.raises(SystemExit, match="iter3"):
        sweep.round_models(run, 3)


def test_a_setting_changes_the_three_thresholds_and_the_weights_only(sweep, tmp_path):
    base = load_config(sweep.CELL_CONFIG)
    detector, estimator = tmp_path / "d.safetensors", tmp_path / "e.safetensors"
    config = sweep.setting_config(base, detector, estimator, 0.35, 0.4, 0.3)
    assert (config.models.detector_tile_size, config.models.detection_score_threshold,
            config.spatial_filter.min_hand_score) == (0.35, 0.4, 0.3)
    weights = (config.models.detector_checkpoint, config.models.pose_checkpoint)
    assert weights == (str(detector), str(estimator))
    assert config.spatial_filter.min_keypoints == base.spatial_filter.min_keypoints
    assert config.recurring_objects == base.recurring_objects
    initial = sweep.setting_config(base, None, None, 0.5, 0.5, 0.5)
    assert initial.models.detector_checkpoint == base.models.detector_checkpoint
