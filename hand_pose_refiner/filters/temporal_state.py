"""What the temporal filter works on: a frame's hands as per-track rows, and each track's memory.

A frame's arrays are converted once (:class:`FrameRows`) and each tracked hand works on its rows
(:class:`TrackHand`); a frame waits in the filter as a :class:`HeldFrame` until it is released,
then :func:`released_frame` turns its hands back into a :class:`~hand_pose_refiner.hands.FrameHands`.
A track's :class:`TrackMemory` holds what the velocity gate and the gap filling compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hand_pose_refiner.arrays import all_set, any_set
from hand_pose_refiner.filters.smoothing import OneEuroFilter
from hand_pose_refiner.filters.spatial import valid_keypoints
from hand_pose_refiner.hands import FrameHands, box_diagonal
from hand_pose_refiner.skeleton import NUM_KEYPOINTS


@dataclass
class TrackHand:
    """One track's hand in one frame, as the filter works on it."""

    stamp_s: float
    keypoints: np.ndarray  # (21, 2) float64
    states: np.ndarray  # (21,) uint8
    scores: np.ndarray  # (21,) float32
    box: np.ndarray  # (4,)
    detection_score: float
    handedness: int
    handedness_score: float
    size: float
    valid: np.ndarray  # (21,) bool: usable coordinates; kept in step with states


class FrameRows:
    """A frame's per-hand arrays converted once for the temporal filter; hands take their rows."""

    def __init__(self, hands: FrameHands) -> None:
        self.keypoints = hands.keypoints.astype(np.float64)
        self.states = hands.keypoint_states.copy()
        self.scores = hands.keypoint_scores.copy()
        self.boxes = hands.boxes.copy()
        self.detection_scores = hands.detection_scores.tolist()
        self.handedness = hands.handedness.tolist()
        self.handedness_scores = hands.handedness_scores.tolist()
        self.valid = valid_keypoints(self.states)
        missing = np.isnan(self.keypoints)
        if any_set(missing):  # per-keypoint reductions only where some coordinate is NaN
            self.valid &= ~missing.any(axis=-1)
        self.all_valid: list[bool] = ([True] * len(self.valid) if all_set(self.valid)
                                      else np.asarray(self.valid.all(axis=1)).tolist())
        self.sizes = _box_diagonals(self.keypoints, self.valid, self.all_valid)


def _box_diagonals(keypoints: np.ndarray, valid: np.ndarray, all_valid: list[bool]) -> list[float]:
    """Per hand, :func:`~hand_pose_refiner.hands.box_diagonal` of its valid keypoints.

    When every keypoint of the frame is valid (the common case), all hands' boxes come from one
    set of numpy calls; a hand with invalid keypoints, or without a finite diagonal (an infinite
    keypoint), is measured on its own.
    """
    if all(all_valid):
        extent = keypoints.max(axis=1) - keypoints.min(axis=1)
        diagonals = np.hypot(extent[:, 0], extent[:, 1]).tolist()
    else:
        diagonals = [math.nan] * len(keypoints)
    return [diagonal if math.isfinite(diagonal) else
            box_diagonal(keypoints[index], None if all_valid[index] else valid[index])
            for index, diagonal in enumerate(diagonals)]


@dataclass
class HeldFrame:
    """A frame waiting in the filter: its input, its stamp in seconds, its hands by track."""

    hands: FrameHands
    stamp_s: float
    by_track: dict[int, TrackHand]
    rows: FrameRows | None = None  # the arrays the hands of by_track are rows of

    @property
    def stamp_ns(self) -> int:
        return self.hands.stamp_ns


@dataclass
class TrackMemory:
    """Per-track state: references for the velocity check and for interpolation."""

    arrivals: int = 0  # observations pushed so far
    released: int = 0  # observations released so far
    last_seen_s: float = -np.inf
    reference_xy: np.ndarray = field(default_factory=lambda: np.full((NUM_KEYPOINTS, 2), np.nan))
    reference_s: np.ndarray = field(default_factory=lambda: np.full(NUM_KEYPOINTS, -np.inf))
    size: float = 0.0
    released_xy: np.ndarray = field(default_factory=lambda: np.full((NUM_KEYPOINTS, 2), np.nan))
    released_s: np.ndarray = field(default_factory=lambda: np.full(NUM_KEYPOINTS, -np.inf))
    released_scores: np.ndarray = field(default_factory=lambda: np.zeros(NUM_KEYPOINTS))
    last_released: TrackHand | None = None
    smoother: OneEuroFilter | None = None


def released_frame(frame: HeldFrame, rows: dict[int, TrackHand]) -> FrameHands:
    """The released hands as the frame's output.

    When every hand of the frame is released on its own row (no hand dropped or bridged), the
    frame's arrays already hold the output values except the keypoints: the states and
    scores (changed in place) are copied, the unchanged arrays kept from the input frame.
    """
    hands = list(rows.values())
    keypoints = np.array([h.keypoints for h in hands], np.float32).reshape(-1, NUM_KEYPOINTS, 2)
    template = frame.hands
    if (frame.rows is not None and len(hands) == len(template)
            and all(frame.by_track.get(track_id) is hand for track_id, hand in rows.items())):
        return template.derive(keypoints=keypoints, keypoint_scores=frame.rows.scores.copy(),
                               keypoint_states=frame.rows.states.copy())
    return template.derive(
        keypoints=keypoints,
        keypoint_scores=np.array([h.scores for h in hands], np.float32).reshape(-1, NUM_KEYPOINTS),
        keypoint_states=np.array([h.states for h in hands], np.uint8).reshape(-1, NUM_KEYPOINTS),
        boxes=np.array([h.box for h in hands], np.float32).reshape(-1, 4),
        detection_scores=np.array([h.detection_score for h in hands], np.float32),
        handedness=np.array([h.handedness for h in hands], np.uint8),
        handedness_scores=np.array([h.handedness_score for h in hands], np.float32),
        track_ids=np.fromiter(rows, np.int64, len(rows)),
    )
