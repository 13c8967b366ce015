"""The online recogniser: windowing on real, irregular stamps, and bad input that never raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_refiner.activity import ActivityModel, ActivityRecognizer, ActivityResult
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ActivityClassMismatchError
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, REJECTED, Handedness
from hand_pose_refiner.synthetic import curled_hand, open_hand

CLASSES = ("idle", "reach", "grasp", "screw")
CONFIG = ActivityConfig(window_frames=8, stride_frames=3, class_names=CLASSES, max_gap_s=0.3,
                        min_valid_fraction=0.5)


@pytest.fixture(scope="module")
def model() -> ActivityModel:
    torch.manual_seed(0)
    return ActivityModel(CLASSES, window_frames=8, stride_frames=3, channels=(8, 8), strides=(1, 2),
                         temporal_kernel=3).eval()


def irregular_stamps(count: int, seed: int = 0, start_ns: int = 1_700_000_000_000_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start_ns + np.cumsum(rng.integers(20_000_000, 60_000_000, count))


def frame(stamp: int, *hands: tuple[int, np.ndarray], handedness: int = Handedness.RIGHT) -> FrameHands:
    keypoints = np.stack([pose for _, pose in hands]) if hands else np.zeros((0, NUM_KEYPOINTS, 2))
    return FrameHands(int(stamp), 640, 480, keypoints, track_ids=[track for track, _ in hands],
                      handedness=np.full(len(hands), handedness))


def pose(i: int) -> np.ndarray:
    return open_hand((200 + 3 * i, 200 + np.sin(i)), angle=0.05 * i)


def test_windows_follow_real_stamps_and_stride(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    stamps = irregular_stamps(20)
    emitted: list[tuple[int, ActivityResult]] = []
    for i, stamp in enumerate(stamps):
        emitted.extend((i, result) for result in recognizer.push(frame(stamp, (5, pose(i)))))
    # first window when 8 poses are there, then every 3 new poses
    assert [i for i, _ in emitted] == [7, 10, 13, 16, 19]
    for i, result in emitted:
        assert result.track_id == 5
        assert result.window_start_ns == stamps[i - 7] and result.window_end_ns == stamps[i]
        assert result.class_names == CLASSES and result.label in CLASSES
        assert result.scores.shape == (4,) and result.scores.dtype == np.float32
        assert result.scores.sum() == pytest.approx(1.0, abs=1e-5)
        assert result.confidence == pytest.approx(float(result.scores.max()))
        assert result.label == CLASSES[int(np.argmax(result.scores))]
    assert isinstance(recognizer.stats, RejectionStats)
    assert recognizer.stats.totals["windows"] == 5 and recognizer.stats.totals["results"] == 5
    assert not recognizer.stats.rejections


def test_tracks_are_windowed_separately(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    results = []
    for i, stamp in enumerate(irregular_stamps(16)):
        hands = [(1, pose(i))] + ([(2, curled_hand((450, 300)))] if i % 2 else [])  # track 2 every other
        results.extend(recognizer.push(frame(stamp, *hands)))
    assert [r.track_id for r in results] == [1, 1, 1, 2]  # track 1: poses 8, 11, 14; track 2: its 8th
    assert results[-1].window_end_ns == irregular_stamps(16)[15]


def test_a_pause_longer_than_max_gap_restarts_the_window(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    stamps = irregular_stamps(30)
    stamps[12:] += 1_000_000_000  # 1 s without poses after the 12th
    results = [r for i, s in enumerate(stamps) for r in recognizer.push(frame(s, (3, pose(i))))]
    pause_start, pause_end = stamps[11], stamps[12]
    assert results, "windows resume after the pause"
    assert all(r.window_end_ns <= pause_start or r.window_start_ns >= pause_end for r in results)
    after = [r for r in results if r.window_start_ns >= pause_end]
    assert after[0].window_start_ns == pause_end and after[0].window_end_ns == stamps[19]
    assert recognizer.stats.rejections["gap"] == 1


def test_fewer_poses_than_a_window_wait_and_are_counted_when_the_track_ends(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    stamps = irregular_stamps(7)
    assert all(recognizer.push(frame(s, (4, pose(i)))) == [] for i, s in enumerate(stamps))
    assert recognizer.stats.rejections["short_track"] == 0  # still waiting
    assert recognizer.push(frame(stamps[-1] + 2_000_000_000)) == []  # empty frame, track gone
    assert recognizer.stats.rejections["short_track"] == 1
    assert recognizer.stats.rejections["gap"] == 1


def test_nan_keypoints_are_masked_and_bad_windows_skipped(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    stamps = irregular_stamps(20)
    results = []
    for i, stamp in enumerate(stamps):
        hand = pose(i)
        if i % 2:
            hand[[8, 12, 16]] = np.nan  # a few keypoints lost every other frame: still classified
        if 8 <= i < 14:
            hand[1:] = np.nan  # only the wrist left: too little for a window
        if i == 15:
            hand[:] = np.nan  # nothing at all
        results.extend(recognizer.push(frame(stamp, (9, hand))))
    stats = recognizer.stats
    assert stats.totals["masked_keypoints"] == 6 * 3 + 6 * 20  # odd frames outside 8..15; 8..13
    assert stats.rejections["empty_pose"] == 1
    assert stats.rejections["low_valid_fraction"] >= 2
    assert results[0].window_end_ns == stamps[7]
    assert all(np.isfinite(r.scores).all() for r in results)
    assert stats.totals["results"] == len(results) == stats.totals["windows"] - stats.rejections[
        "low_valid_fraction"] - stats.rejections["no_palm"]


def test_rejected_keypoints_count_as_missing(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    for i, stamp in enumerate(irregular_stamps(8)):
        hands = frame(stamp, (1, pose(i)))
        states = hands.keypoint_states.copy()
        states[0, :15] = REJECTED
        recognizer.push(hands.with_arrays(keypoint_states=states))
    assert recognizer.stats.totals["masked_keypoints"] == 8 * 15
    assert recognizer.stats.rejections["low_valid_fraction"] == 1  # 6 of 21 valid < 0.5


def test_bad_frames_are_counted_never_raised(model):
    recognizer = ActivityRecognizer(CONFIG, model)
    stamps = irregular_stamps(12)
    assert recognizer.push(frame(stamps[0], (1, pose(0)))) == []
    assert recognizer.push(frame(stamps[0], (1, pose(1)))) == []  # same stamp again
    assert recognizer.push(frame(stamps[0] - 5, (1, pose(1)))) == []  # older
    assert recognizer.push(frame(stamps[1], (-1, pose(1)))) == []  # untracked
    assert recognizer.push(frame(stamps[2], (1, pose(2)), (1, pose(3)))) == []  # duplicate track
    assert recognizer.push(FrameHands.empty(int(stamps[3]))) == []
    broken = frame(stamps[4], (1, pose(4))).derive(track_ids=np.array([1, 2]))  # inconsistent arrays
    assert recognizer.push(broken) == []
    infinite = pose(5)
    infinite[2] = np.inf
    assert recognizer.push(frame(stamps[5], (1, infinite))) == []
    rejections = recognizer.stats.rejections
    assert rejections["non_monotonic_stamp"] == 2 and rejections["untracked_hand"] == 1
    assert rejections["duplicate_track"] == 1 and rejections["malformed_frame"] == 1


def test_left_hands_are_mirrored_into_the_same_decision(model):
    right = ActivityRecognizer(CONFIG, model)
    left = ActivityRecognizer(CONFIG, model)
    results_right, results_left = [], []
    for i, stamp in enumerate(irregular_stamps(8)):
        hand = pose(i)
        mirrored = hand.copy()
        mirrored[:, 0] = 640 - mirrored[:, 0]
        results_right += right.push(frame(stamp, (1, hand), handedness=Handedness.RIGHT))
        results_left += left.push(frame(stamp, (1, mirrored), handedness=Handedness.LEFT))
    np.testing.assert_allclose(results_left[0].scores, results_right[0].scores, atol=1e-5)


def test_model_for_other_classes_is_refused(model):
    config = ActivityConfig(window_frames=8, class_names=("idle", "hold"))
    with pytest.raises(ActivityClassMismatchError, match=r"\['idle', 'reach', 'grasp', 'screw'\].*"
                                                         r"\['idle', 'hold'\]"):
        ActivityRecognizer(config, model)
