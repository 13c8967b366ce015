"""Recurring-object filter: hand-shaped objects that come back at one place across stills.

A fixed camera sees the same things in every frame. When the pose model mistakes one of them for
a hand (a tray of wooden blocks, a coiled cable), it does so in frame after frame at the same
place, though not with the same keypoints: measured on the 28 top-view stills of the gloved
glovebox, the live models score a block tray as a hand in 9 frames, box centres within 0.25 hand
sizes of each other (mostly within 0.1), while the hallucinated finger layouts differ by 0.1-0.5
hand sizes from frame to frame. No per-frame anatomical rule rejects it: it *is* hand-shaped.

So a hand whose box centre lies within ``max_centre_distance`` hand sizes (the larger side of
the keypoint box, averaged over the two hands) of a hand in at least ``min_other_frames`` other
frames of the same image size is dropped as an object. A worker's real hand does come back to
where the work is, but less exactly: the gloved hands of the side view, at the station in most
frames, are 0.15-0.5 hand sizes apart, and at most two of them within 0.25 of a third. The rule
needs the whole folder at once, so it runs offline on stills only (replay and refine); in a
video a resting hand is at one place for many frames and this rule would be wrong there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.config import RecurringObjectsConfig
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands

RULE = "recurring_object"
_CHUNK = 512  # hands per block of the pairwise comparison (bounds memory on large folders)


def recurring_hands(frames: Sequence[FrameHands], min_other_frames: int,
                    max_centre_distance: float) -> list[npt.NDArray[np.bool_]]:
    """Per frame, a mask of its hands at a place where hands are in ``min_other_frames`` other frames."""
    owners = np.concatenate([np.full(len(frame), index) for index, frame in enumerate(frames)]
                            + [np.zeros(0, int)]).astype(np.intp)
    if len(owners) == 0:
        return [np.zeros(0, bool) for _ in frames]
    keypoints = np.concatenate([frame.keypoints for frame in frames]).astype(np.float64)
    image_sizes = np.array([(frame.image_width, frame.image_height) for frame in frames])[owners]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a hand without any keypoint: all NaN
        low, high = np.nanmin(keypoints, axis=1), np.nanmax(keypoints, axis=1)
    centres = (low + high) / 2
    hand_sizes = np.max(high - low, axis=1)
    recurs = np.zeros(len(owners), np.intp)
    for start in range(0, len(owners), _CHUNK):
        rows = slice(start, start + _CHUNK)
        limit = max_centre_distance * 0.5 * (hand_sizes[rows, None] + hand_sizes[None, :])
        with np.errstate(invalid="ignore"):
            near = np.linalg.norm(centres[rows, None] - centres[None], axis=-1) <= limit
        near &= (image_sizes[rows, None] == image_sizes[None]).all(-1) & (owners[rows, None] != owners[None])
        for i in range(near.shape[0]):
            recurs[start + i] = len(np.unique(owners[near[i]]))
    dropped = recurs >= min_other_frames
    return [dropped[owners == index] for index in range(len(frames))]


def drop_recurring_objects(frames: Sequence[FrameHands], config: RecurringObjectsConfig,
                           stats: RejectionStats | None = None) -> list[FrameHands]:
    """``frames`` without the hands that :func:`recurring_hands` finds, each one counted."""
    stats = stats or RejectionStats("recurring_objects")
    masks = recurring_hands(frames, config.min_other_frames, config.max_centre_distance)
    kept = []
    for frame, dropped in zip(frames, masks, strict=True):
        stats.add("hands_in", len(frame))
        if dropped.any():
            stats.reject(RULE, int(dropped.sum()),
                         f"hand-shaped at the same place in {config.min_other_frames}+ other frames")
            frame = frame.select(~dropped)
        stats.add("hands_out", len(frame))
        kept.append(frame)
    return kept
