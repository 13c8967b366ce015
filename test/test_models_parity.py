"""The torch port of MediaPipe Hands against MediaPipe itself (the pinned wheel), on real images.

MediaPipe runs its own hand tracking graph in static-image mode; the graph's intermediate
streams (palm detections and the hand ROIs derived from them) are requested too, so that the
detector, the ROI geometry and the landmark network are each compared on their own.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_pose_refiner.hands import box_iou
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.estimator import rois_from_detections
from hand_pose_refiner.models.mediapipe.geometry import image_to_crop
from hand_pose_refiner.skeleton import Handedness

CLIP_FRAMES = (0, 45)


class MediaPipeReference:
    """MediaPipe's CPU hand graph, returning palms, ROIs, landmarks and handedness in pixels."""

    def __init__(self) -> None:
        from mediapipe.python.solution_base import SolutionBase
        from mediapipe.python.solutions import hands

        self.graph = SolutionBase(
            binary_graph_path=hands._BINARYPB_FILE_PATH,
            side_inputs={"model_complexity": 1, "num_hands": 4, "use_prev_landmarks": False},
            calculator_params={
                "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                "handlandmarkcpu__ThresholdingCalculator.threshold": 0.5,
            },
            outputs=["multi_hand_landmarks", "multi_handedness", "palm_detections",
                     "hand_rects_from_palm_detections"],
        )

    def run(self, image: np.ndarray) -> dict:
        result = self.graph.process({"image": image})
        height, width = image.shape[:2]
        palms = []
        for detection in result.palm_detections or []:
            box = detection.location_data.relative_bounding_box
            palms.append(([box.xmin * width, box.ymin * height, (box.xmin + box.width) * width,
                           (box.ymin + box.height) * height],
                          [(k.x * width, k.y * height) for k in detection.location_data.relative_keypoints],
                          detection.score[0]))
        rois = [(r.x_center * width, r.y_center * height, r.width * width, r.rotation)
                for r in result.hand_rects_from_palm_detections or []]
        landmarks = [[(p.x * width, p.y * height) for p in hand.landmark]
                     for hand in result.multi_hand_landmarks or []]
        handedness = [(c.classification[0].label, c.classification[0].score)
                      for c in result.multi_handedness or []]
        return {"palms": palms, "rois": np.asarray(rois, np.float32).reshape(-1, 4),
                "landmarks": np.asarray(landmarks, np.float32).reshape(-1, 21, 2),
                "handedness": handedness}

    def close(self) -> None:
        self.graph.close()


def _frames(shared_data: Path) -> list[tuple[str, np.ndarray]]:
    frames = []
    for path in sorted((shared_data / "labelled_hands").glob("*/*")):
        if path.suffix in (".jpg", ".png"):
            frames.append((path.name, read_rgb(path)))
    for clip in sorted((shared_data / "bare_hand_clips").glob("*.webm")):
        capture = cv2.VideoCapture(str(clip))
        for index in range(max(CLIP_FRAMES) + 1):
            ok, frame = capture.read()
            assert ok, f"{clip}: cannot decode frame {index}"
            if index in CLIP_FRAMES:
                frames.append((f"{clip.name}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        capture.release()
    return frames


@pytest.fixture(scope="module")
def compared(shared_data):
    """Each frame with MediaPipe's result and the port's detections."""
    reference = MediaPipeReference()
    detector = MediaPipeHandDetector(device="cpu")
    estimator = MediaPipePoseEstimator(device="cpu")
    rows = []
    for name, image in _frames(shared_data):
        rows.append((name, image, reference.run(image), detector.detect([image])[0]))
    reference.close()
    return rows, estimator


def test_enough_real_hands_are_compared(compared):
    rows, _ = compared
    assert len(rows) >= 19
    assert sum(len(ref["palms"]) for _, _, ref, _ in rows) >= 25


def test_palm_detections_match_mediapipe(compared):
    rows, _ = compared
    for name, _, reference, detections in rows:
        assert len(detections) == len(reference["palms"]), name
        for box, keypoints, score in reference["palms"]:
            iou = box_iou(box, detections.boxes)[0]
            best = int(iou.argmax())
            assert iou[best] >= 0.95, f"{name}: palm box IoU {iou[best]:.3f}"
            assert abs(detections.scores[best] - score) < 0.02, name
            size = box[2] - box[0]
            assert np.abs(detections.keypoints[best] - np.asarray(keypoints)).max() < 0.02 * size, name


def test_hand_rois_match_mediapipe(compared):
    rows, _ = compared
    for name, _, reference, detections in rows:
        ours = rois_from_detections(detections)
        for roi in reference["rois"]:
            nearest = int(np.argmin(np.hypot(*(ours[:, :2] - roi[:2]).T)))
            assert np.abs(ours[nearest, :3] - roi[:3]).max() < 0.02 * roi[2], (name, ours[nearest], roi)
            angle = (ours[nearest, 3] - roi[3] + np.pi) % (2 * np.pi) - np.pi
            assert abs(angle) < 0.02, name


def test_landmarks_match_mediapipe_on_its_crops(compared):
    rows, estimator = compared
    errors = []
    for name, image, reference, _ in rows:
        if not len(reference["rois"]):
            continue
        prediction = estimator.predict_rois([image], [reference["rois"]])[0]
        # MediaPipe drops ROIs whose hand presence is below 0.5: pair each of its hands with
        # the ROI it came from (the one whose crop it fits best).
        for landmarks in reference["landmarks"]:
            theirs = image_to_crop(np.repeat(landmarks[None], len(reference["rois"]), axis=0),
                                   reference["rois"], 224)
            error = np.linalg.norm(prediction.crop_landmarks - theirs, axis=-1).mean(axis=-1).min()
            # An upside-down duplicate crop (hands1 frame 45, presence 0.56) is the least certain
            # case and differs most; every confident hand is within a fraction of a pixel.
            assert error < 1.5, f"{name}: mean landmark error {error} px on the 224 px crop"
            errors.append(error)
    assert len(errors) >= 25
    assert float(np.mean(errors)) < 0.3
    assert float(np.median(errors)) < 0.15


def test_full_pipeline_and_handedness_match_mediapipe(compared):
    rows, estimator = compared
    for name, image, reference, detections in rows:
        hands = estimator.estimate([image], [detections])[0]
        assert len(hands) == len(reference["landmarks"]), name
        assert hands.model_name == "mediapipe/hand_landmark_full"
        for landmarks, (label, score) in zip(reference["landmarks"], reference["handedness"], strict=True):
            distance = np.linalg.norm(hands.keypoints - landmarks, axis=-1).mean(axis=-1)
            best = int(distance.argmin())
            size = np.ptp(landmarks, axis=0).max()
            assert distance[best] < 0.02 * size, name
            # MediaPipe labels a mirrored image; the port reports the unmirrored camera's hand.
            expected = Handedness.RIGHT if label == "Left" else Handedness.LEFT
            assert hands.handedness[best] == expected, name
            assert abs(hands.handedness_scores[best] - score) < 0.02, name
