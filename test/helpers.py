"""Constructed hands for tests."""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import ENCODINGS
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, NUM_KEYPOINTS, WRIST


def open_hand(center: tuple[float, float] = (100.0, 100.0), scale: float = 1.0,
              angle: float = 0.0) -> np.ndarray:
    """A plausible open right hand, fingers up, as ``(21, 2)`` pixel coordinates.

    ``scale`` 1 gives a palm (wrist to middle base) of 40 px.
    """
    points = np.zeros((NUM_KEYPOINTS, 2))
    points[WRIST] = (0.0, 0.0)
    bases = {"thumb": (-18.0, -10.0), "index": (-12.0, -38.0), "middle": (0.0, -40.0),
             "ring": (11.0, -38.0), "pinky": (20.0, -33.0)}
    lengths = {"thumb": (12.0, 10.0, 8.0), "index": (14.0, 9.0, 7.0), "middle": (16.0, 10.0, 7.0),
               "ring": (15.0, 9.0, 7.0), "pinky": (11.0, 7.0, 6.0)}
    for finger, chain in FINGER_KEYPOINTS.items():
        base = np.array(bases[finger])
        direction = base / np.linalg.norm(base)
        points[chain[0]] = base
        for joint, length in zip(chain[1:], lengths[finger], strict=True):
            points[joint] = points[joint - 1] + direction * length
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points * scale) @ rotation.T + np.asarray(center)


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
