"""PCK and EPE on hands with known offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import open_hand

from hand_pose_refiner.hands import boxes_from_keypoints
from hand_pose_refiner.metrics import box_sizes, epe, keypoint_distances, pck


def test_distances_and_epe_of_a_shifted_hand():
    hand = open_hand()[None]
    shifted = hand + np.array([3.0, 4.0])
    assert np.allclose(keypoint_distances(shifted, hand), 5.0)
    assert epe(shifted, hand) == pytest.approx(5.0)
    assert epe(hand, hand) == 0.0


def test_pck_threshold_is_alpha_times_the_longer_box_side():
    hand = open_hand()[None]
    box = boxes_from_keypoints(hand)
    size = box_sizes(box)[0]
    assert size == pytest.approx(max(box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]))
    near = hand + np.array([0.19 * size, 0.0])
    far = hand + np.array([0.21 * size, 0.0])
    assert pck(near, hand, box, alpha=0.2) == 1.0
    assert pck(far, hand, box, alpha=0.2) == 0.0
    assert pck(far, hand, box, alpha=0.3) == 1.0


def test_pck_counts_labelled_keypoints_only_and_missing_predictions_as_wrong():
    hand = open_hand()[None]
    box = boxes_from_keypoints(hand)
    target = hand.copy()
    target[0, :5] = np.nan  # 5 unlabelled keypoints do not count
    predicted = hand.copy()
    predicted[0, 5:9] = np.nan  # 4 labelled keypoints not found: wrong
    assert pck(predicted, target, box) == pytest.approx(12 / 16)
    assert epe(predicted, target) == 0.0
    assert math.isnan(pck(predicted, np.full_like(hand, np.nan), box))


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError):
        pck(np.zeros((2, 21, 2)), np.zeros((2, 21, 2)), np.zeros((1, 4)))
    with pytest.raises(ValueError):
        epe(np.zeros((1, 21, 2)), np.zeros((1, 20, 2)))


def test_bone_normalised_pck_uses_the_wrist_to_middle_mcp_length():
    from hand_pose_refiner.metrics import pck_bone

    hand = open_hand()[None]
    bone = np.linalg.norm(hand[0, 9] - hand[0, 0])
    assert pck_bone(hand + np.array([0.49 * bone, 0]), hand, alpha=0.5) == 1.0
    assert pck_bone(hand + np.array([0.51 * bone, 0]), hand, alpha=0.5) == 0.0
    unreferenced = hand.copy()
    unreferenced[0, 9] = np.nan
    assert math.isnan(pck_bone(hand, unreferenced))


def test_pck_auc_of_perfect_and_shifted_predictions():
    from hand_pose_refiner.metrics import pck_auc, pck_curve

    hand = open_hand()[None]
    box = boxes_from_keypoints(hand)
    assert pck_auc(hand, hand, box) == pytest.approx(1.0, abs=0.02)
    size = box_sizes(box)[0]
    shifted = hand + np.array([0.25 * size, 0])  # correct from alpha 0.25 on: area about half of [0, 0.5]
    assert pck_auc(shifted, hand, box) == pytest.approx(0.5, abs=0.03)
    assert pck_curve(shifted, hand, box, [0.2, 0.3]).tolist() == [0.0, 1.0]


def test_detection_rate_and_detection_precision_recall():
    from hand_pose_refiner.metrics import detection_precision_recall, detection_rate

    assert detection_rate([0, 1, 2, 0]) == 0.5
    assert math.isnan(detection_rate([]))
    labels = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.zeros((0, 4))]
    predictions = [np.array([[1, 1, 10, 10]]),  # hit
                   np.array([[0, 0, 10, 10], [1, 0, 10, 10]]),  # one hit, one duplicate
                   np.array([[50, 50, 60, 60]])]  # false positive
    precision, recall = detection_precision_recall(predictions, labels)
    assert precision == pytest.approx(2 / 4)
    assert recall == pytest.approx(2 / 3)


def test_rejection_precision_recall():
    from hand_pose_refiner.metrics import rejection_precision_recall

    rejected = np.array([True, True, False, False, True])
    bad = np.array([True, False, True, False, True])
    assert rejection_precision_recall(rejected, bad) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    with pytest.raises(ValueError):
        rejection_precision_recall(rejected, bad[:3])
