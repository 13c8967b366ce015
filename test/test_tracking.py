import numpy as np
from helpers import open_hand

from hand_pose_refiner.config import TrackingConfig
from hand_pose_refiner.filters.tracking import HandTracker
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import Handedness

FRAME_NS = 33_333_333


def frame(t: int, *hands: np.ndarray, handedness=None, stamp_ns=None) -> FrameHands:
    keypoints = np.stack(hands) if hands else np.zeros((0, 21, 2))
    count = len(hands)
    labels = handedness if handedness is not None else [Handedness.UNKNOWN] * count
    return FrameHands(stamp_ns if stamp_ns is not None else t * FRAME_NS, 640, 480, keypoints,
                      keypoint_scores=np.full((count, 21), 0.9), detection_scores=np.full(count, 0.9),
                      handedness=labels, handedness_scores=np.full(count, 0.9))


def test_crossing_hands_keep_their_ids():
    tracker = HandTracker(TrackingConfig())
    ids = []
    for t in range(40):  # the hands pass each other around t = 20, 30 px apart vertically
        left = open_hand((100 + 12 * t, 240))
        right = open_hand((580 - 12 * t, 270))
        tracked = tracker.update(frame(t, left, right))
        ids.append(tracked.track_ids.tolist())
    assert all(pair == ids[0] for pair in ids), ids
    assert len(set(ids[0])) == 2


def test_crossing_hands_with_opposite_handedness_keep_their_ids_when_overlapping():
    tracker = HandTracker(TrackingConfig())
    ids = []
    for t in range(30):
        left = open_hand((150 + 10 * t, 240))
        right = open_hand((440 - 10 * t, 240))  # same row: the two hands overlap completely
        tracked = tracker.update(frame(t, left, right, handedness=[Handedness.LEFT, Handedness.RIGHT]))
        ids.append(tracked.track_ids.tolist())
    assert all(pair == ids[0] for pair in ids)


def test_short_occlusion_keeps_the_id_and_a_long_one_starts_a_new_track():
    tracker = HandTracker(TrackingConfig(max_missed_s=0.5))
    first = tracker.update(frame(0, open_hand((100, 100)))).track_ids[0]
    tracker.update(frame(1, open_hand((104, 100))))
    for t in range(2, 8):  # 0.2 s without the hand
        tracker.update(frame(t))
    assert tracker.update(frame(8, open_hand((132, 100)))).track_ids[0] == first
    for t in range(9, 30):  # 0.7 s without the hand
        tracker.update(frame(t))
    assert tracker.update(frame(30, open_hand((132, 100)))).track_ids[0] != first
    assert tracker.stats.totals["tracks_ended"] == 1


def test_far_jump_is_a_new_track():
    tracker = HandTracker(TrackingConfig(max_match_distance=1.0))
    a = tracker.update(frame(0, open_hand((100, 100)))).track_ids[0]
    b = tracker.update(frame(1, open_hand((500, 400)))).track_ids[0]
    assert a != b


def test_handedness_is_consistent_per_track():
    tracker = HandTracker(TrackingConfig())
    labels = [Handedness.RIGHT] * 5 + [Handedness.LEFT] + [Handedness.RIGHT] * 3
    outputs = [tracker.update(frame(t, open_hand((100 + t, 100)), handedness=[label]))
               for t, label in enumerate(labels)]
    assert [int(o.handedness[0]) for o in outputs] == [Handedness.RIGHT] * len(labels)
    assert outputs[5].handedness_scores[0] < outputs[4].handedness_scores[0]


def test_backwards_stamp_is_counted_and_left_untracked():
    tracker = HandTracker(TrackingConfig())
    tracker.update(frame(5, open_hand()))
    result = tracker.update(frame(4, open_hand()))
    assert result.track_ids.tolist() == [-1]
    assert tracker.stats.rejections["non_monotonic_stamp"] == 1
