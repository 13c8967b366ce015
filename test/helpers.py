"""Constructed hands for tests."""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import ENCODINGS
from hand_pose_refiner.skeleton import NUM_KEYPOINTS
from hand_pose_refiner.synthetic import bend, curled_hand, open_hand  # noqa: F401  (re-exported)


def frame_with_hands(*hands: np.ndarray, stamp_ns: int = 1_000_000_000, width: int = 640,
                     height: int = 480, seed: int = 0) -> FrameHands:
    """A frame with the given hands, random but valid scores and metadata."""
    rng = np.random.default_rng(seed)
    count = len(hands)
    keypoints = np.stack(hands) if hands else np.zeros((0, NUM_KEYPOINTS, 2))
    return FrameHands(
        stamp_ns, width, height, keypoints,
        keypoint_scores=rng.uniform(0.5, 1.0, (count, NUM_KEYPOINTS)),
        keypoint_states=rng.integers(0, 2, (count, NUM_KEYPOINTS)),
        detection_scores=rng.uniform(0.5, 1.0, count),
        handedness=rng.integers(0, 3, count),
        handedness_scores=rng.uniform(0.5, 1.0, count),
        track_ids=np.arange(count) + 7,
        frame_id="camera_optical_frame",
        model_name="test-model",
    )


def random_image(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def same_hands(back: FrameHands, original: FrameHands) -> bool:
    """Equal after a trip through HandPoseArray, which carries the model name per hand only."""
    if len(original) == 0:
        back = FrameHands.concatenate([back])
        back.model_name = original.model_name
    return back.equals(original)


def labelled_pck(found: list[FrameHands], labelled: list, alpha: float = 0.2) -> float:
    """PCK of predicted hands against labelled ones (``CocoImage``s, same order as ``found``):
    each labelled hand is scored against the predicted hand nearest to it."""
    from hand_pose_refiner.metrics import pck

    predicted, truth, boxes = [], [], []
    for hands, item in zip(found, labelled, strict=True):
        for k in range(len(item.hands)):
            error = np.linalg.norm(hands.keypoints - item.hands.keypoints[k], axis=-1).mean(axis=-1)
            predicted.append(hands.keypoints[int(np.argmin(error))])
            truth.append(item.hands.keypoints[k])
            boxes.append(item.hands.boxes[k])
    return pck(np.stack(predicted), np.stack(truth), np.stack(boxes), alpha)
