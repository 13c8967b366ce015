"""Synthetic hands with realistic proportions: test fixtures, benchmarks, corruption tools.

Coordinates are image pixels (x right, y down), keypoints in the skeleton order.
"""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, NUM_KEYPOINTS, WRIST


def open_hand(center: tuple[float, float] = (100.0, 100.0), scale: float = 1.0,
              angle: float = 0.0) -> np.ndarray:
    """A plausible open right hand, fingers up, as ``(21, 2)`` pixel coordinates.

    ``scale`` 1 gives a palm (wrist to middle base) of 40 px.
    """
    points = np.zeros((NUM_KEYPOINTS, 2))
    points[WRIST] = (0.0, 0.0)
    # knuckle span (index to pinky MCP) 24 px: palms are 1.5-2 times as long as that span
    bases = {"thumb": (-18.0, -10.0), "index": (-9.0, -39.0), "middle": (0.0, -40.0),
             "ring": (8.0, -38.5), "pinky": (15.0, -34.0)}
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


def bend(points: np.ndarray, joint: int, degrees: float) -> np.ndarray:
    """Rotate the part of a finger beyond ``joint`` around it (positive: counter-clockwise)."""
    finger = next(chain for chain in FINGER_KEYPOINTS.values() if joint in chain)
    beyond = [k for k in finger if k > joint]
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    bent = points.copy()
    bent[beyond] = (points[beyond] - points[joint]) @ rotation.T + points[joint]
    return bent


def curled_hand(center: tuple[float, float] = (100.0, 100.0), degrees: float = 25.0) -> np.ndarray:
    """An open hand with every PIP and DIP of the four fingers flexed by ``degrees``."""
    points = open_hand(center)
    for base in (5, 9, 13, 17):
        points = bend(points, base + 1, degrees)
        points = bend(points, base + 2, degrees)
    return points


def two_circling_hands(count: int, seed: int = 0) -> list[FrameHands]:
    """Two hands (an open left, a curled right) circling at ~30 fps with jittered stamps, keypoint
    noise and, in 5% of the frames, one keypoint thrown off: the filter benchmark's stream, and a
    reference stream of the filters' regression test."""
    rng = np.random.default_rng(seed)
    stamps = np.cumsum(rng.uniform(0.028, 0.040, count))
    frames = []
    for t in stamps:
        left = open_hand((200 + 80 * np.cos(t), 240 + 60 * np.sin(t)), scale=1.5)
        right = curled_hand((440 + 80 * np.cos(1.3 * t), 240 + 60 * np.sin(1.3 * t)))
        hands = np.stack([left, right]) + rng.normal(0, 1.0, (2, 21, 2))
        if rng.random() < 0.05:
            hands[rng.integers(2), rng.integers(21)] += rng.normal(0, 40, 2)
        frames.append(FrameHands(int(t * 1e9), 640, 480, hands.astype(np.float32),
                                 keypoint_scores=rng.uniform(0.4, 1, (2, 21)).astype(np.float32),
                                 detection_scores=rng.uniform(0.7, 1, 2).astype(np.float32),
                                 handedness=np.array([1, 2], np.uint8),
                                 handedness_scores=np.array([0.9, 0.9], np.float32)))
    return frames

