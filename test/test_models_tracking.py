"""Following hands from the previous frame's landmarks (MediaPipe's video mode) on a real clip."""

from __future__ import annotations

import cv2
import numpy as np

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import HandFollower
from hand_pose_refiner.models.mediapipe import MediaPipePoseEstimator


def test_followed_hands_stay_on_the_detected_hands(shared_data):
    capture = cv2.VideoCapture(str(shared_data / "bare_hand_clips" / "hands1.webm"))
    frames = []
    while len(frames) < 20:
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    assert estimator.tracks_landmarks
    (first,) = estimator.estimate([frames[0]], detector.detect([frames[0]]), [0])
    assert len(first) >= 1
    followed, drift = first, []
    lost = 0
    for index, frame in enumerate(frames[1:], start=1):
        detections = detector.detect([frame])
        # as the pose node does: detections are only brought in while a hand is missing
        missing_a_hand = detections[0] if len(followed) < 2 else None
        followed = estimator.estimate_tracked(frame, followed, index, missing_a_hand)
        (detected,) = estimator.estimate([frame], detections, [index])
        lost += len(followed) < len(detected)
        distance = np.linalg.norm(followed.keypoints[:, None] - detected.keypoints[None], axis=-1).mean(-1)
        drift.append(float(distance.min(axis=1).max()))
    # the detection path itself moves a few pixels between crops; following stays close to it,
    # and a hand it loses comes back with the next frame's detections
    assert np.median(drift) < 5.0 and max(drift) < 20.0, drift
    assert lost <= 2
    # an empty previous frame follows nothing, detections bring hands back
    empty = FrameHands.empty(0, frames[0].shape[1], frames[0].shape[0])
    assert len(estimator.estimate_tracked(frames[1], empty, 1)) == 0
    assert len(estimator.estimate_tracked(frames[1], empty, 1, detector.detect([frames[1]])[0])) >= 1


def test_the_detector_is_needed_unless_max_hands_were_followed_within_the_gap():
    """MediaPipe's video-mode rule, as the detector node applies it to the pose estimator's output."""
    from dataclasses import replace

    from hand_pose_refiner.config import Config

    config = Config()
    follower = HandFollower(MediaPipePoseEstimator(device="cpu"), config)
    gap_ns = round(config.models.landmark_tracking_max_gap_s * 1e9)
    max_hands = config.spatial_filter.max_hands
    assert not follower.needs_detections_after(0, max_hands, 33_000_000)
    assert follower.needs_detections_after(0, max_hands - 1, 33_000_000)  # room for another hand
    assert follower.needs_detections_after(0, max_hands, gap_ns + 1)  # followed too long ago
    assert follower.needs_detections_after(0, max_hands, 0)  # not an earlier frame
    off = replace(config, models=replace(config.models, landmark_tracking=False))
    assert HandFollower(MediaPipePoseEstimator(device="cpu"), off).needs_detections_after(0, max_hands, 1)
