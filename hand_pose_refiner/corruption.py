"""Realistic corruptions of correct hand poses: known-bad poses for tuning and testing filters.

Pose models fail in typical ways. Each corruption below reproduces one of them on a correct
(labelled) pose, so the filters can be measured on poses whose badness is known:

================  ===========================================================================
kind              what a model got wrong
================  ===========================================================================
swapped_fingers   the distal chains (PIP, DIP, tip) of two non-adjacent fingers are swapped, as
                  when a model attaches a finger to the wrong knuckle
background_snap   one keypoint snapped to a random spot of the background, at least one hand
                  size from where it belongs
wrong_scale       the fingers drawn 2.5-3.5 times too long for the palm, as from a mis-sized crop
left_right_mixup  the pose of the other hand: keypoints mirrored across the hand's long axis
                  and the handedness label flipped
spike             (sequences only) keypoints displaced for a single frame, 0.5-1.5 hand sizes
================  ===========================================================================

All functions take ``(21, 2)`` pixel keypoints (NaN where unlabelled) and a NumPy random
generator, and return new arrays; inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, WRIST

FRAME_CORRUPTIONS = ("swapped_fingers", "background_snap", "wrong_scale", "left_right_mixup")
CORRUPTIONS = (*FRAME_CORRUPTIONS, "spike")

_MIDDLE_MCP = FINGER_KEYPOINTS["middle"][0]
_NON_ADJACENT = (("index", "ring"), ("index", "pinky"), ("middle", "pinky"), ("thumb", "middle"))


def hand_size(keypoints: np.ndarray) -> float:
    """Diagonal of the box around the labelled keypoints, pixels."""
    points = keypoints[np.isfinite(keypoints).all(axis=-1)]
    if len(points) == 0:
        return 0.0
    return float(np.hypot(*(points.max(axis=0) - points.min(axis=0))))


def swapped_fingers(keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    first, second = _NON_ADJACENT[rng.integers(len(_NON_ADJACENT))]
    a, b = list(FINGER_KEYPOINTS[first][1:]), list(FINGER_KEYPOINTS[second][1:])
    result = keypoints.copy()
    result[a], result[b] = keypoints[b], keypoints[a]
    return result


def background_snap(keypoints: np.ndarray, rng: np.random.Generator,
                    image_size: tuple[int, int]) -> np.ndarray:
    result = keypoints.copy()
    labelled = np.flatnonzero(np.isfinite(keypoints).all(axis=-1))
    index = rng.choice(labelled)
    size = max(hand_size(keypoints), 1.0)
    width, height = image_size
    for _ in range(100):
        spot = rng.uniform((0, 0), (width, height))
        if np.hypot(*(spot - keypoints[index])) >= size:
            break
    else:  # image too small to be one hand size away inside it: go outside the hand
        spot = keypoints[index] + size * np.array([1.0, 0.0])
    result[index] = spot
    return result


def wrong_scale(keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    factor = rng.uniform(2.5, 3.5)
    result = keypoints.copy()
    for chain in FINGER_KEYPOINTS.values():
        base = keypoints[chain[0]]
        result[list(chain[1:])] = base + factor * (keypoints[list(chain[1:])] - base)
    return result


def left_right_mixup(keypoints: np.ndarray) -> np.ndarray:
    """Mirror across the line through the wrist and the middle MCP (the hand's long axis)."""
    origin, axis_end = keypoints[WRIST], keypoints[_MIDDLE_MCP]
    if not (np.isfinite(origin).all() and np.isfinite(axis_end).all()):
        return keypoints * np.array([-1.0, 1.0]) + np.array([2 * np.nanmean(keypoints[:, 0]), 0.0])
    axis = (axis_end - origin) / max(np.hypot(*(axis_end - origin)), 1e-9)
    relative = keypoints - origin
    along = (relative @ axis)[:, None] * axis
    return origin + 2 * along - relative


def corrupt(keypoints: np.ndarray, kind: str, rng: np.random.Generator,
            image_size: tuple[int, int]) -> np.ndarray:
    """One frame corruption of ``keypoints`` by name (see the module docstring)."""
    if kind == "swapped_fingers":
        return swapped_fingers(keypoints, rng)
    if kind == "background_snap":
        return background_snap(keypoints, rng, image_size)
    if kind == "wrong_scale":
        return wrong_scale(keypoints, rng)
    if kind == "left_right_mixup":
        return left_right_mixup(keypoints)
    raise ValueError(f"unknown frame corruption {kind!r}; use one of {', '.join(FRAME_CORRUPTIONS)}")


def spike(keypoints: np.ndarray, rng: np.random.Generator, count: int = 1) -> np.ndarray:
    """``count`` keypoints displaced by 0.5-1.5 hand sizes in random directions (one frame)."""
    result = keypoints.copy()
    labelled = np.flatnonzero(np.isfinite(keypoints).all(axis=-1))
    size = max(hand_size(keypoints), 1.0)
    for index in rng.choice(labelled, size=min(count, len(labelled)), replace=False):
        angle = rng.uniform(0, 2 * np.pi)
        result[index] += rng.uniform(0.5, 1.5) * size * np.array([np.cos(angle), np.sin(angle)])
    return result
