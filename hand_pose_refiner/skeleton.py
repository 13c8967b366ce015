"""The 21-keypoint hand skeleton shared by every model, filter and message.

Order: the wrist, then thumb, index, middle, ring and pinky, each from its base to its tip.
This is the order of MediaPipe Hands, OneHand10K, COCO-WholeBody hands and OpenPose hands.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

NUM_KEYPOINTS = 21

FINGER_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

_JOINT_NAMES: dict[str, tuple[str, str, str, str]] = {
    "thumb": ("cmc", "mcp", "ip", "tip"),
    "index": ("mcp", "pip", "dip", "tip"),
    "middle": ("mcp", "pip", "dip", "tip"),
    "ring": ("mcp", "pip", "dip", "tip"),
    "pinky": ("mcp", "pip", "dip", "tip"),
}

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    *(f"{finger}_{joint}" for finger in FINGER_NAMES for joint in _JOINT_NAMES[finger]),
)

WRIST = 0

# Keypoint indices of each finger, base to tip.
FINGER_KEYPOINTS: dict[str, tuple[int, int, int, int]] = {
    finger: (1 + 4 * i, 2 + 4 * i, 3 + 4 * i, 4 + 4 * i) for i, finger in enumerate(FINGER_NAMES)
}

# The 20 bones as (parent, child) keypoint indices: wrist to each finger base, then along it.
BONES: npt.NDArray[np.intp] = np.array(
    [
        pair
        for chain in FINGER_KEYPOINTS.values()
        for pair in zip((WRIST, *chain[:-1]), chain, strict=True)
    ],
    dtype=np.intp,
)

BONE_NAMES: tuple[str, ...] = tuple(
    f"{KEYPOINT_NAMES[parent]}->{KEYPOINT_NAMES[child]}" for parent, child in BONES
)

# Keypoints spanning the palm: wrist and the five finger bases.
PALM_KEYPOINTS: tuple[int, ...] = (WRIST, 1, 5, 9, 13, 17)


class Handedness(IntEnum):
    """Which hand it is; values equal the HandPose.HANDEDNESS_* message constants."""

    UNKNOWN = 0
    LEFT = 1
    RIGHT = 2

    @classmethod
    def from_label(cls, label: str) -> Handedness:
        """Parse 'left' / 'right' (any case); anything else is UNKNOWN."""
        return {"left": cls.LEFT, "right": cls.RIGHT}.get(label.strip().lower(), cls.UNKNOWN)

    def swapped(self) -> Handedness:
        """The other hand, as seen in a mirrored image."""
        return {Handedness.LEFT: Handedness.RIGHT, Handedness.RIGHT: Handedness.LEFT}.get(
            self, Handedness.UNKNOWN
        )


class KeypointState(IntEnum):
    """What the filters made of a keypoint; values equal HandPose.KEYPOINT_* constants."""

    OBSERVED = 0
    INTERPOLATED = 1
    REJECTED = 2
    MISSING = 3


# Plain-int copies of the states, for hot loops (enum attribute access is slow in CPython).
OBSERVED, INTERPOLATED, REJECTED, MISSING = (int(state) for state in KeypointState)


def bone_lengths(keypoints: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Length of each of the 20 bones, in the keypoints' unit.

    ``keypoints`` has shape ``(..., 21, 2)`` (or ``(..., 21, 3)``; only x and y are used).
    Returns shape ``(..., 20)``; NaN where an end of the bone is NaN.
    """
    points = np.asarray(keypoints, dtype=np.float64)[..., :2]
    if points.shape[-2] != NUM_KEYPOINTS:
        raise ValueError(f"expected {NUM_KEYPOINTS} keypoints, got shape {points.shape}")
    delta = points[..., BONES[:, 1], :] - points[..., BONES[:, 0], :]
    return np.hypot(delta[..., 0], delta[..., 1])


def tip_first_to_base_first(keypoints: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Reorder keypoints listed tip-first per finger (as in RHD) to base-first.

    Works on the keypoint axis ``-2`` of an array shaped ``(..., 21, D)``; the mapping is its own
    inverse, so it also converts back.
    """
    points = np.asarray(keypoints)
    order = [WRIST]
    for chain in FINGER_KEYPOINTS.values():
        order.extend(reversed(chain))
    return points[..., order, :]
