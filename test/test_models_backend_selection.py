"""Choosing the model backend: config key, --backend, and what a missing OpenMMLab extra says."""

from __future__ import annotations

import sys

import pytest

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError, ModelError
from hand_pose_refiner.models import create_backend


def test_a_missing_mmlab_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmdet", None)  # as where mmdet is not installed
    with pytest.raises(ModelError, match=r"needs mmdet, mmpose and mmcv.*bash scripts/setup\.sh --mmlab"):
        create_backend(ModelsConfig(backend="mmlab", device="cpu"))


def test_replay_and_refine_take_a_backend_option(monkeypatch, tmp_path, capsys):
    from hand_pose_refiner.cli import main

    monkeypatch.setitem(sys.modules, "mmdet", None)
    for command in ("replay", "refine"):
        assert main([command, str(tmp_path), "--backend", "mmlab", "--out", str(tmp_path / command),
                     "--quiet"]) != 0
        assert "bash scripts/setup.sh --mmlab" in capsys.readouterr().err


def test_default_names_the_built_in_backend():
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    detector, estimator = create_backend(ModelsConfig(backend="default", device="cpu"))
    assert isinstance(detector, MediaPipeHandDetector) and isinstance(estimator, MediaPipePoseEstimator)
    with pytest.raises(ConfigError, match="'mediapipe' \\(or 'default'\\) or 'mmlab'"):
        create_backend(ModelsConfig(backend="other", device="cpu"))
