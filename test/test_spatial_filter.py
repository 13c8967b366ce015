import logging
from dataclasses import replace

import numpy as np
import pytest
from helpers import bend, curled_hand, frame_with_hands, open_hand

from hand_pose_refiner.config import SpatialFilterConfig
from hand_pose_refiner.filters.spatial import SpatialFilter, backward_bend
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, KeypointState

DEFAULT = SpatialFilterConfig()


def good_frame(*hands: np.ndarray, **kwargs) -> FrameHands:
    frame = frame_with_hands(*hands, **kwargs)
    return frame.with_arrays(keypoint_states=np.zeros_like(frame.keypoint_states),
                             keypoint_scores=np.full_like(frame.keypoint_scores, 0.9),
                             detection_scores=np.full_like(frame.detection_scores, 0.9))


def run(frame: FrameHands, **settings) -> tuple[SpatialFilter, object]:
    spatial = SpatialFilter(replace(DEFAULT, **settings))
    return spatial, spatial(frame)


def test_plausible_hands_pass_untouched():
    frame = good_frame(open_hand(), curled_hand((300, 200)))
    spatial, result = run(frame)
    assert len(result.accepted) == 2 and result.rejected_reasons == ()
    assert result.accepted.equals(frame)
    assert spatial.stats.totals["hands_out"] == 2


def test_index_bone_three_times_too_long_is_rejected_for_bone_length():
    hand = open_hand(scale=2.0)  # palm 80 px, as this camera sees hands
    index = list(FINGER_KEYPOINTS["index"])
    hand[index] += 2.0 * hand[index[0]] - 2.0 * hand[0]  # wrist->index MCP three times as long
    _, result = run(good_frame(hand), max_bone_length_px=120.0)
    assert result.rejected_reasons == ("bone_length",)
    assert len(result.accepted) == 0


def test_bone_length_limit_scales_with_the_image():
    hand = open_hand(scale=2.0)
    without_size = tuple(r for r in DEFAULT.rules if r != "hand_size")
    _, small_image = run(good_frame(hand, width=160, height=120), max_bone_length_fraction=0.3,
                         rules=without_size)
    assert small_image.rejected_reasons == ("bone_length",)  # 80 px bone > 0.3 * 200 px diagonal
    _, large_image = run(good_frame(hand, width=1280, height=960), max_bone_length_fraction=0.3)
    assert len(large_image.accepted) == 1


def test_finger_bone_too_long_for_the_palm_is_rejected_for_bone_ratio():
    hand = open_hand()
    pip, rest = FINGER_KEYPOINTS["middle"][1], list(FINGER_KEYPOINTS["middle"][1:])
    hand[rest] += 2.0 * (hand[pip] - hand[pip - 1])  # proximal phalanx three times as long
    _, result = run(good_frame(hand))
    assert result.rejected_reasons == ("bone_ratio",)
    _, switched_off = run(good_frame(hand), rules=tuple(r for r in DEFAULT.rules if r != "bone_ratio"))
    assert len(switched_off.accepted) == 1


def test_finger_bent_backwards_is_rejected_for_joint_angle():
    curled = curled_hand(degrees=30.0)
    backwards = bend(curled, 7, -110.0)  # index DIP bent 80 degrees against the other joints
    assert np.rad2deg(backward_bend(curled[None], np.ones((1, 21), bool))[0]) == pytest.approx(0.0)
    assert np.rad2deg(backward_bend(backwards[None], np.ones((1, 21), bool))[0]) == pytest.approx(80.0)
    _, result = run(good_frame(curled, backwards + np.array([300, 0])))
    assert result.rejected_reasons == ("joint_angle",)
    assert result.accepted.keypoints[0, 0, 0] == pytest.approx(curled[0, 0])


def test_mirrored_curled_hand_is_not_bent_backwards():
    mirrored = curled_hand() * [-1, 1] + [400, 0]
    _, result = run(good_frame(mirrored))
    assert len(result.accepted) == 1


def test_low_keypoint_scores_reject_keypoints_then_the_hand():
    frame = good_frame(open_hand())
    frame.keypoint_scores[0, [3, 4]] = 0.1
    _, result = run(frame)
    assert len(result.accepted) == 1
    states = result.accepted.keypoint_states[0]
    assert states[3] == states[4] == KeypointState.REJECTED
    np.testing.assert_array_equal(result.accepted.keypoints, frame.keypoints)
    frame.keypoint_scores[0, :10] = 0.1
    spatial, result = run(frame)
    assert result.rejected_reasons == ("min_keypoints",)
    assert spatial.stats.rejections["keypoint_score"] == 10


def test_hand_score_threshold():
    frame = good_frame(open_hand(), open_hand((300, 300)))
    frame.detection_scores[1] = 0.2
    _, result = run(frame)
    assert result.rejected_reasons == ("hand_score",)
    assert result.rejected.track_ids.tolist() == [frame.track_ids[1]]


@pytest.mark.parametrize(("scale", "settings", "reason"), [
    (0.1, {}, "hand_too_small"),
    (1.0, {"min_hand_size_px": 200.0, "max_hand_size_px": 2000.0}, "hand_too_small"),
    (1.0, {"min_hand_size_fraction": 0.5}, "hand_too_small"),
    (1.0, {"max_hand_size_px": 50.0}, "hand_too_large"),
    (6.0, {"max_hand_size_fraction": 0.5}, "hand_too_large"),
])
def test_hand_size_limits(scale, settings, reason):
    _, result = run(good_frame(open_hand((320, 400), scale=scale)), **settings)
    assert result.rejected_reasons == (reason,)


def test_duplicate_detection_of_the_same_hand_keeps_the_better_one():
    frame = good_frame(open_hand(), open_hand((102, 101)), open_hand((400, 300)))
    frame.detection_scores[:] = [0.7, 0.95, 0.8]
    _, result = run(frame)
    assert result.rejected_reasons == ("duplicate",)
    assert sorted(result.accepted.track_ids.tolist()) == sorted(frame.track_ids[[1, 2]].tolist())


def test_max_hands_keeps_the_best():
    frame = good_frame(*[open_hand((100 + 150 * i, 200)) for i in range(4)])
    frame.detection_scores[:] = [0.6, 0.9, 0.7, 0.95]
    _, result = run(frame, max_hands=2)
    assert result.rejected_reasons == ("max_hands", "max_hands")
    assert sorted(result.accepted.track_ids.tolist()) == sorted(frame.track_ids[[1, 3]].tolist())


def test_non_finite_keypoints_become_missing_and_are_counted_and_logged_once(caplog):
    frame = good_frame(open_hand())
    frame.keypoints[0, 2] = np.nan
    frame.keypoints[0, 3, 1] = np.inf
    spatial = SpatialFilter(DEFAULT)
    with caplog.at_level(logging.WARNING, logger="hand_pose_refiner.filters"):
        first, second = spatial(frame), spatial(frame)
    for result in (first, second):
        assert len(result.accepted) == 1
        assert (result.accepted.keypoint_states[0, [2, 3]] == KeypointState.MISSING).all()
        assert np.isnan(result.accepted.keypoints[0, [2, 3]]).all()
    assert spatial.stats.rejections["non_finite_keypoint"] == 4
    assert sum("non_finite_keypoint" in r.message for r in caplog.records) == 1


def test_disabled_filter_passes_everything():
    frame = good_frame(open_hand(scale=0.01))
    _, result = run(frame, enabled=False)
    assert result.accepted is frame


def test_zero_and_fifty_hands():
    spatial = SpatialFilter(DEFAULT)
    assert len(spatial(FrameHands.empty(1, 640, 480)).accepted) == 0
    crowd = good_frame(*[open_hand((60 + 120 * (i % 10), 60 + 90 * (i // 10)), scale=0.8) for i in range(50)],
                       width=1280, height=480)
    result = spatial(crowd)
    assert len(result.accepted) == 2
    assert result.rejected_reasons.count("max_hands") == 48
    assert spatial.stats.rejections["max_hands"] == 48


def test_hand_with_a_single_keypoint_is_rejected_not_raised():
    lonely = np.full((21, 2), np.nan)
    lonely[0] = (100.0, 100.0)
    frame = good_frame(open_hand((300, 300)))
    frame = FrameHands.concatenate([frame, frame.with_arrays(keypoints=lonely[None])])
    spatial, result = run(frame)
    assert result.rejected_reasons == ("min_keypoints",)
    assert len(result.accepted) == 1
    assert spatial.stats.rejections["non_finite_keypoint"] == 20


def test_foreshortened_finger_segments_are_not_judged_for_joint_angle():
    curled = curled_hand(degrees=30.0)
    # the index fingertip seen end-on: its last segment shrinks to 2 px, pointing anywhere
    foreshortened = curled.copy()
    direction = (curled[8] - curled[7]) / np.linalg.norm(curled[8] - curled[7])
    foreshortened[8] = curled[7] + 2.0 * np.array([direction[1], -direction[0]])
    assert np.rad2deg(backward_bend(foreshortened[None], np.ones((1, 21), bool))[0]) > 50
    _, result = run(good_frame(foreshortened))
    assert len(result.accepted) == 1
