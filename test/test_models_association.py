"""One crop per hand: of two overlapping detected crops, which one the pose estimator keeps."""

from __future__ import annotations

import numpy as np
import pytest

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models.base import Detections
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.estimator import associate, one_crop_per_hand, rois_from_detections
from hand_pose_refiner.refinement.cache import model_key


def _square(cx: float, cy: float, size: float = 100.0) -> list[float]:
    return [cx, cy, size, 0.0]


def test_the_surer_of_two_overlapping_crops_stays_mediapipe_keeps_the_later():
    rois = np.array([_square(100, 100), _square(120, 100), _square(400, 100)], np.float32)
    assert associate(rois).tolist() == [1, 2]  # MediaPipe: the later of the overlapping pair
    assert one_crop_per_hand(rois, np.array([0.9, 0.06, 0.5], np.float32)).tolist() == [0, 2]
    assert one_crop_per_hand(rois, np.array([0.2, 0.7, 0.5], np.float32)).tolist() == [1, 2]
    assert one_crop_per_hand(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)).size == 0


@pytest.fixture(scope="module")
def hand_image(shared_data):
    item = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")[2]
    image = read_rgb(item.path)
    return image, item.hands.keypoints[0]


def test_estimate_keeps_the_crop_with_the_hand_not_the_lower_scored_one(hand_image):
    image, truth = hand_image
    (found,) = MediaPipeHandDetector(device="cpu").detect([image])
    assert len(found) >= 1
    # The palm detector's order is by score: its palm first, then the same palm turned by 90
    # degrees with a lower score; the crops overlap, and MediaPipe's association keeps the later.
    box, palm = found.boxes[:1], found.keypoints[:1]
    centre = (box[:, :2] + box[:, 2:]) / 2
    quarter_turn = np.array([[0.0, 1.0], [-1.0, 0.0]])
    turned = ((palm - centre[:, None]) @ quarter_turn + centre[:, None]).astype(np.float32)
    detections = Detections(np.concatenate([box, box]), np.array([0.9, 0.8], np.float32),
                            np.concatenate([palm, turned]), found.image_width, found.image_height)
    assert associate(rois_from_detections(detections)).tolist() == [1]
    mediapipe = MediaPipePoseEstimator(device="cpu", min_presence=0.0)
    surest = MediaPipePoseEstimator(device="cpu", min_presence=0.0, surest_crop=True)
    (prediction,) = surest.predict_rois([image], [rois_from_detections(detections)])
    assert prediction.presence[0] > prediction.presence[1] + 0.1  # upright: surer

    (kept,) = surest.estimate([image], [detections])
    (later,) = mediapipe.estimate([image], [detections])
    assert len(kept) == len(later) == 1
    assert kept.detection_scores[0] == pytest.approx(prediction.presence[0] * 0.9, rel=1e-4)
    assert later.detection_scores[0] == pytest.approx(prediction.presence[1] * 0.8, rel=1e-4)
    size = float(np.ptp(truth[np.isfinite(truth).all(axis=1)], axis=0).max())
    assert np.nanmean(np.linalg.norm(kept.keypoints[0] - truth, axis=-1)) < 0.1 * size


def test_surest_crop_is_in_the_cache_key_only_when_on():
    detector = MediaPipeHandDetector(device="cpu")
    estimator = MediaPipePoseEstimator(device="cpu")
    before = model_key(detector, estimator)
    estimator.surest_crop = True
    assert model_key(detector, estimator) != before
    estimator.surest_crop = False
    assert model_key(detector, estimator) == before  # off: the caches made before it existed stay valid
