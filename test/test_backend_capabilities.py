"""Backends behind capabilities: generic code builds a backend by name and asks for what only some
backends can do with isinstance on the protocols of models/base.py, never importing a backend."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch
from support import REPO

from hand_pose_refiner.config import Config, MediaPipeConfig, ModelsConfig
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import BACKENDS, backend, create_backend
from hand_pose_refiner.models.base import (
    OnDevice,
    SupportsConsistencyCheck,
    SupportsCropSearch,
    SupportsPresenceThreshold,
    SupportsSelfCheck,
    SupportsSurestCrop,
    SupportsTiles,
)
from hand_pose_refiner.refinement.round_models import RoundModels
from hand_pose_refiner.refinement.rounds import DEFAULT_SCHEDULE

PACKAGE = REPO / "hand_pose_refiner"
# The generic layers: they may name the interface and the registry, never a backend's module.
GENERIC = [*sorted((PACKAGE / "refinement").glob("*.py")), *sorted((PACKAGE / "ros" / "nodes").glob("*.py")),
           PACKAGE / "tuning.py", PACKAGE / "cli.py", PACKAGE / "api.py", PACKAGE / "checkpoint_check.py"]
BACKEND_MODULES = ("hand_pose_refiner.models.mediapipe", "hand_pose_refiner.models.mmlab")


def imported_modules(path):
    """Every module an ``import`` or ``from ... import`` in the file names (in functions too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_generic_code_imports_no_backend_module():
    offending = [f"{path.relative_to(REPO)}: {name}" for path in GENERIC for name in imported_modules(path)
                 if name.startswith(BACKEND_MODULES)]
    assert len(GENERIC) > 10 and not offending


def test_backends_are_found_by_name_and_an_unknown_name_is_refused():
    assert set(BACKENDS) == {"mediapipe", "default", "mmlab"}
    assert backend("default") is backend("mediapipe") and backend("mmlab").name == "mmlab"
    with pytest.raises(ConfigError, match=r"'caffe': unknown; use 'mediapipe' \(or 'default'\) or 'mmlab'"):
        backend("caffe")


def test_the_default_backend_has_the_capabilities_refinement_asks_for():
    detector, estimator = create_backend(Config(models=ModelsConfig(device="cpu"),
                                                  mediapipe=MediaPipeConfig(detector_tile_size=0.5)))
    for capability in (SupportsPresenceThreshold, SupportsCropSearch, SupportsConsistencyCheck,
                       SupportsSelfCheck, SupportsSurestCrop, OnDevice):
        assert isinstance(estimator, capability), capability.__name__
        assert not isinstance(detector, capability) or capability is OnDevice, capability.__name__
    assert isinstance(detector, SupportsTiles) and not isinstance(estimator, SupportsTiles)
    assert detector.tile_size == 0.5 and len(detector.rois(1280, 720)) > 1  # the whole frame, then tiles
    blank = np.zeros((720, 1280, 3), np.uint8)
    assert len(detector.detect_views(blank, detector.rois(1280, 720)[:2])) == 0


def test_a_rounds_models_get_its_candidate_presence_through_the_capability(tmp_path):
    models = RoundModels(tmp_path, Config(models=ModelsConfig(device="cpu")))
    thresholds = DEFAULT_SCHEDULE[0]
    detector, estimator = models.build(0, thresholds)
    assert isinstance(estimator, SupportsPresenceThreshold)
    assert estimator.min_presence == thresholds.min_presence != ModelsConfig().detection_score_threshold
    assert detector.score_threshold == thresholds.detection_score_threshold
    _, live = models.build(0)
    assert isinstance(live, SupportsPresenceThreshold) and live.min_presence == 0.5
    assert models.paths(0) == (None, None)
    assert models.paths(2) == (tmp_path / "iter2" / "detector.safetensors",
                               tmp_path / "iter2" / "estimator.safetensors")


def test_a_model_moved_to_a_device_moves_every_tensor_it_holds(shared_data):
    """What a Ray task given a GPU does (refinement.ray_replay), here to the CPU it is on: the same
    detections before and after, and the detector's anchors on the device too."""
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    frame = read_rgb(shared_data / "labelled_hands" / "onehand10k" / "1402.jpg")
    (before,) = detector.detect([frame])
    for model in (detector, estimator):
        assert isinstance(model, OnDevice)
        model.to_device(torch.device("cpu"))
        assert model.device == torch.device("cpu")
        assert all(parameter.device == torch.device("cpu") for parameter in model.net.parameters())
    assert detector.anchors.device == torch.device("cpu")
    (after,) = detector.detect([frame])
    assert len(before) > 0 and np.array_equal(before.boxes, after.boxes)
