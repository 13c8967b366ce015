import numpy as np
import pytest
from helpers import frame_with_hands, open_hand

from hand_pose_refiner.hands import FrameHands, HandTrack, boxes_from_keypoints
from hand_pose_refiner.skeleton import Handedness, KeypointState


def test_defaults_fill_every_array_with_the_right_dtype_and_shape():
    keypoints = np.stack([open_hand(), open_hand((300, 200))])
    hands = FrameHands(5, 640, 480, keypoints)
    assert len(hands) == 2
    assert hands.keypoints.dtype == np.float32 and hands.keypoints.shape == (2, 21, 2)
    assert hands.keypoint_states.dtype == np.uint8
    assert (hands.keypoint_states == KeypointState.OBSERVED).all()
    assert (hands.handedness == Handedness.UNKNOWN).all()
    assert (hands.track_ids == -1).all()
    np.testing.assert_allclose(hands.boxes[0], [*keypoints[0].min(0), *keypoints[0].max(0)], rtol=1e-6)


def test_bad_shapes_are_refused_with_the_array_name():
    with pytest.raises(ValueError, match="keypoints must have shape"):
        FrameHands(0, 10, 10, np.zeros((1, 20, 2)))
    with pytest.raises(ValueError, match="detection_scores has 1 rows, expected 2"):
        FrameHands(0, 10, 10, np.zeros((2, 21, 2)), detection_scores=[0.5])


def test_empty_frame():
    hands = FrameHands.empty(stamp_ns=3, image_width=4, image_height=5)
    assert len(hands) == 0 and hands.boxes.shape == (0, 4)
    assert hands.select(np.zeros(0, bool)).equals(hands)


def test_select_and_concatenate():
    hands = frame_with_hands(open_hand(), open_hand((300, 200)), open_hand((500, 100)))
    picked = hands.select([2, 0])
    assert picked.track_ids.tolist() == [9, 7]
    assert picked.stamp_ns == hands.stamp_ns and picked.model_name == hands.model_name
    masked = hands.select(np.array([False, True, False]))
    assert masked.track_ids.tolist() == [8]
    merged = FrameHands.concatenate([picked, masked])
    assert merged.track_ids.tolist() == [9, 7, 8]
    picked.keypoints[0, 0, 0] = -1.0
    assert hands.keypoints[2, 0, 0] != -1.0, "select must copy"


def test_boxes_ignore_non_finite_keypoints():
    points = np.stack([open_hand(), np.full((21, 2), np.nan)])
    points[0, 3] = np.nan
    boxes = boxes_from_keypoints(points)
    finite = points[0][np.isfinite(points[0]).all(1)]
    np.testing.assert_allclose(boxes[0], [*finite.min(0), *finite.max(0)], rtol=1e-6)
    assert np.isnan(boxes[1]).all()


def test_track_collects_one_hand_over_time():
    frames = [frame_with_hands(open_hand((100 + t, 100)), open_hand((400, 100)), stamp_ns=t * 33_000_000)
              for t in range(5)]
    frames[2] = frames[2].select([1])  # track 7 is not seen in frame 2
    track = HandTrack.from_frames(7, frames)
    assert len(track) == 4
    assert track.stamps_ns.tolist() == [0, 33_000_000, 99_000_000, 132_000_000]
    assert track.keypoints.shape == (4, 21, 2)
    assert track.keypoints[-1, 0, 0] == pytest.approx(104.0)
    one = track.frame_hands(1, 640, 480)
    assert len(one) == 1 and one.track_ids.tolist() == [7] and one.stamp_ns == 33_000_000
    assert len(HandTrack.from_frames(99, frames)) == 0


def test_duplicate_track_id_in_one_frame_is_an_error():
    frame = frame_with_hands(open_hand(), open_hand((300, 200)))
    frame.track_ids[:] = 1
    with pytest.raises(ValueError, match="appears 2 times"):
        HandTrack.from_frames(1, [frame])
