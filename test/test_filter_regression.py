"""The filter chain gives the same results as the original implementation (fingerprints).

Speed-ups of the spatial filter, tracker and temporal filter must not change which hands are
accepted, the rejection reasons and counts, or the output keypoints and states. The reference in
``test/data/filter_reference.json`` was written by the original code (see ``filter_reference.py``);
float outputs must match bit for bit, or else their sums within 1e-6 relative (an operation order
that changed the last bits of a float64, then rounded to the float32 outputs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from filter_reference import REFERENCE, fingerprints


@pytest.fixture(scope="module")
def current(shared_data):
    return fingerprints(shared_data)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


def test_every_reference_run_is_reproduced(current, reference):
    assert sorted(current) == sorted(reference)


@pytest.mark.parametrize("name", sorted(json.loads(REFERENCE.read_text())))
def test_outputs_match_the_original_implementation(name, current, reference):
    got, want = current[name], reference[name]
    assert got["stats"] == want["stats"]
    assert got["frames_out"] == want["frames_out"]
    assert got["integers"] == want["integers"], "states, track ids, handedness or reasons differ"
    if got["floats"] != want["floats"]:
        np.testing.assert_allclose(got["sums"], want["sums"], rtol=1e-6, atol=1e-6)


def test_score_threshold_shortcut_equals_cleaning_then_comparing():
    from hand_pose_refiner.filters.spatial import below, clean_scores

    scores = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 0.1, 0.3, np.float32(0.3), 0.5, 1.0, 1.5, np.inf],
                      np.float32)
    for threshold in (0.0, 0.1, 0.3, 0.5, 0.7, 1.0):
        np.testing.assert_array_equal(below(scores, threshold), clean_scores(scores) < threshold)
        np.testing.assert_array_equal(below(scores.astype(np.float64), threshold),
                                      clean_scores(scores.astype(np.float64)) < threshold)


def test_clean_scores_matches_clip_and_zeroed_nan():
    from hand_pose_refiner.filters.spatial import clean_scores

    scores = np.array([np.nan, -np.inf, -1.0, 0.0, 0.25, 1.0, 2.0, np.inf], np.float32)
    expected = np.clip(scores, 0.0, 1.0)
    expected[np.isnan(expected)] = 0.0
    result = clean_scores(scores)
    assert result.dtype == scores.dtype
    np.testing.assert_array_equal(result, expected)


def test_handedness_confidence_is_judged_on_float32_scores():
    """A hand scored exactly float32(0.7) counts as confident, as in the vectorised original."""
    from helpers import open_hand

    from hand_pose_refiner.config import TrackingConfig
    from hand_pose_refiner.filters.tracking import HandTracker
    from hand_pose_refiner.hands import FrameHands

    tracker = HandTracker(TrackingConfig(max_match_distance=0.4))
    hand = open_hand((200.0, 200.0))
    for step in range(3):
        tracker.update(FrameHands(10**9 + step * 33_000_000, 640, 480, hand[None], handedness=[2],
                                  handedness_scores=[1.0]))
    moved = FrameHands(10**9 + 3 * 33_000_000, 640, 480, (hand + 8.0)[None], handedness=[1],
                       handedness_scores=[0.7])
    cost = tracker._cost(list(tracker.tracks.values()), moved, np.ones((1, 21), bool),
                         np.zeros((1, 2), np.float32))
    assert cost[0, 0] >= 0.5  # the handedness penalty applies
