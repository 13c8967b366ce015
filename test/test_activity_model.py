"""The activity model: shapes, normalisation invariance, and safetensors checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hand_pose_refiner.activity.features import IN_CHANNELS, usable_keypoints, window_features
from hand_pose_refiner.activity.model import ActivityModel, hand_adjacency
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ActivityCheckpointError, ActivityClassMismatchError
from hand_pose_refiner.skeleton import BONES, NUM_KEYPOINTS
from hand_pose_refiner.synthetic import bend, open_hand

CLASSES = ("idle", "reach", "grasp")


def small_model(classes=CLASSES, window=12) -> ActivityModel:
    torch.manual_seed(0)
    return ActivityModel(classes, window_frames=window, stride_frames=4, channels=(8, 16), strides=(1, 2),
                         temporal_kernel=3).eval()


def moving_hand(frames: int = 12, seed: int = 0):
    """A hand sliding right and curling its index finger, at irregular stamps."""
    rng = np.random.default_rng(seed)
    stamps = np.cumsum(rng.integers(25_000_000, 45_000_000, frames))
    poses = np.stack([bend(open_hand((200 + 6 * i, 150 + 2 * i), angle=0.1), 6, 5 * i)
                      for i in range(frames)])
    poses += rng.normal(0, 0.5, poses.shape)
    poses[3, 8] = np.nan  # one keypoint lost
    valid = usable_keypoints(poses, np.zeros(poses.shape[:2], np.uint8))
    return stamps, poses, valid


def test_adjacency_follows_the_bones():
    adjacency = hand_adjacency()
    assert adjacency.shape == (3, NUM_KEYPOINTS, NUM_KEYPOINTS)
    linked = adjacency.sum(axis=0) > 0
    expected = np.eye(NUM_KEYPOINTS, dtype=bool)
    expected[BONES[:, 0], BONES[:, 1]] = expected[BONES[:, 1], BONES[:, 0]] = True
    assert np.array_equal(linked, expected)
    np.testing.assert_allclose(adjacency.sum(axis=(0, 1)), 1.0, rtol=1e-6)  # columns normalised
    assert adjacency[1, 0, 1] == 0 and adjacency[1, 1, 0] > 0  # partition 1: from the wrist side


def test_output_shapes_for_one_and_two_hands():
    model = small_model()
    one = torch.randn(5, IN_CHANNELS, 12, NUM_KEYPOINTS)
    assert model(one).shape == (5, 3)
    two = torch.randn(4, 2, IN_CHANNELS, 12, NUM_KEYPOINTS)
    assert model(two).shape == (4, 3)
    # an absent second hand (validity channel zero) does not change the result
    alone = torch.randn(2, 1, IN_CHANNELS, 12, NUM_KEYPOINTS)
    alone[:, :, -1] = 1.0
    padded = torch.cat([alone, torch.zeros_like(alone)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(alone[:, 0]))
    probabilities = model.predict_proba(one.numpy())
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(3, IN_CHANNELS, 12))


def test_features_are_invariant_to_translation_and_scale():
    stamps, poses, valid = moving_hand()
    reference = window_features(stamps, poses, valid)
    assert reference is not None and reference.shape == (IN_CHANNELS, 12, NUM_KEYPOINTS)
    moved = window_features(stamps, poses * 3.5 + np.array([417.0, -96.0]), valid)
    np.testing.assert_allclose(moved, reference, atol=1e-4)
    model = small_model()
    np.testing.assert_allclose(model.predict_proba(moved[None]), model.predict_proba(reference[None]),
                               atol=1e-5)
    # ...but they do see the motion: a hand standing still gives other features
    still = window_features(stamps, np.repeat(poses[:1], 12, axis=0), valid)
    assert not np.allclose(still, reference, atol=1e-2)


def test_mirrored_left_hand_gives_the_right_hands_features():
    stamps, poses, valid = moving_hand()
    mirrored = poses.copy()
    mirrored[..., 0] = 640.0 - mirrored[..., 0]
    np.testing.assert_allclose(window_features(stamps, mirrored, valid, mirror=True),
                               window_features(stamps, poses, valid), atol=1e-4)


def test_features_use_real_stamps_and_mask_invalid_keypoints():
    stamps, poses, valid = moving_hand()
    features = window_features(stamps, poses, valid)
    assert features[6, 3, 8] == 0 and features[:, 3, 8].tolist() == [0.0] * IN_CHANNELS
    # twice the time between the same poses: half the speed, same positions
    slow = window_features(stamps * 2, poses, valid)
    np.testing.assert_allclose(slow[4:6], features[4:6] / 2, atol=1e-5)
    np.testing.assert_allclose(slow[:4], features[:4], atol=1e-6)
    # no palm anywhere: nothing to normalise by
    assert window_features(stamps, poses, np.zeros_like(valid)) is None


def test_checkpoint_round_trip(tmp_path):
    model = small_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    path = model.save(tmp_path / "models" / "activity.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["activity.safetensors"]  # no temp file left
    config = ActivityConfig(window_frames=12, stride_frames=4, class_names=CLASSES)
    loaded = ActivityModel.load(path, config)
    assert loaded.class_names == CLASSES and loaded.window_frames == 12 and loaded.stride_frames == 4
    assert loaded.channels == (8, 16) and not loaded.training
    batch = np.random.default_rng(1).normal(size=(3, IN_CHANNELS, 12, NUM_KEYPOINTS)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_proba(batch), model.predict_proba(batch), atol=1e-6)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["class_names"]) == list(CLASSES)


def test_checkpoint_with_other_classes_is_refused_naming_both_lists(tmp_path):
    path = small_model().save(tmp_path / "activity.safetensors")
    config = ActivityConfig(window_frames=12, class_names=("idle", "reach", "screw"))
    with pytest.raises(ActivityClassMismatchError) as caught:
        ActivityModel.load(path, config)
    message = str(caught.value)
    assert "['idle', 'reach', 'grasp']" in message and "['idle', 'reach', 'screw']" in message
    with pytest.raises(ActivityCheckpointError, match="windows of 12 poses"):
        ActivityModel.load(path, ActivityConfig(window_frames=32, class_names=CLASSES))


def test_broken_or_foreign_checkpoints_are_refused(tmp_path):
    path = small_model().save(tmp_path / "activity.safetensors")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ActivityCheckpointError, match="not a complete safetensors file"):
        ActivityModel.load(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign), metadata={"format": "something else"})
    with pytest.raises(ActivityCheckpointError, match="not an activity checkpoint"):
        ActivityModel.load(foreign)
    with pytest.raises(ActivityCheckpointError, match="not found"):
        ActivityModel.load(tmp_path / "missing.safetensors")
