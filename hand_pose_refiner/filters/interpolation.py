"""The temporal filter's gap filling (step 3, at release): linear interpolation in time.

A rejected or missing keypoint between two valid observations of its track at most
``max_gap_s`` apart is interpolated between them (state INTERPOLATED); a frame in which a
track was not detected at all gets an interpolated hand (:func:`bridge`) when the track is seen
again within ``max_gap_s``. The earlier observation is the track's last released one
(:func:`remember_released`), the later one comes from the frames the filter holds ahead.
"""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.arrays import all_set
from hand_pose_refiner.filters.spatial import valid_keypoints
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal_state import HeldFrame, TrackHand, TrackMemory
from hand_pose_refiner.skeleton import INTERPOLATED, MISSING


def fill_keypoint_gaps(memory: TrackMemory, track_id: int, hand: TrackHand, ahead: list[HeldFrame],
                       max_gap_s: float, stats: RejectionStats) -> None:
    """Interpolate each invalid keypoint of ``hand`` between the track's last released value and
    its next valid one in ``ahead``, where the two are at most ``max_gap_s`` apart (counted)."""
    if all_set(hand.valid):
        return
    for keypoint in np.flatnonzero(~hand.valid).tolist():
        before_s = memory.released_s[keypoint]
        if not np.isfinite(before_s):
            continue
        after = _next_valid(track_id, keypoint, ahead, before_s + max_gap_s)
        if after is None:
            continue
        after_s, after_xy, after_score = after
        weight = (hand.stamp_s - before_s) / (after_s - before_s)
        hand.keypoints[keypoint] = memory.released_xy[keypoint] + weight * (
            after_xy - memory.released_xy[keypoint])
        hand.scores[keypoint] = memory.released_scores[keypoint] + weight * (
            after_score - memory.released_scores[keypoint])
        hand.states[keypoint] = INTERPOLATED
        hand.valid[keypoint] = True
        stats.add("interpolated_keypoints")


def _next_valid(track_id: int, keypoint: int, ahead: list[HeldFrame],
                latest_s: float) -> tuple[float, np.ndarray, float] | None:
    """The next valid observation of one keypoint no later than ``latest_s``."""
    for later in ahead:
        if later.stamp_s > latest_s:
            return None
        hand = later.by_track.get(track_id)
        if hand is not None and hand.valid[keypoint]:
            return later.stamp_s, hand.keypoints[keypoint], float(hand.scores[keypoint])
    return None


def bridge(track_id: int, before: TrackHand, stamp_s: float, ahead: list[HeldFrame],
           max_gap_s: float) -> TrackHand | None:
    """An interpolated hand for a frame in which the track was not detected, if the gap is short."""
    if stamp_s - before.stamp_s > max_gap_s:
        return None
    after = next((f.by_track[track_id] for f in ahead if track_id in f.by_track), None)
    if after is None or after.stamp_s - before.stamp_s > max_gap_s:
        return None
    weight = (stamp_s - before.stamp_s) / (after.stamp_s - before.stamp_s)

    def lerp(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        return np.asarray(a) + weight * (np.asarray(b) - np.asarray(a))

    both = before.valid & after.valid
    states = np.where(both, INTERPOLATED, MISSING).astype(np.uint8)
    keypoints = np.where(both[:, None], lerp(before.keypoints, after.keypoints), np.nan)
    return TrackHand(stamp_s, keypoints, states, np.where(both, lerp(before.scores, after.scores), 0.0),
                     lerp(before.box, after.box), float(lerp(before.detection_score, after.detection_score)),
                     after.handedness, after.handedness_score, float(lerp(before.size, after.size)),
                     valid_keypoints(states) & ~np.isnan(keypoints).any(axis=-1))


def remember_released(memory: TrackMemory, hand: TrackHand) -> None:
    """Keep a released hand's valid keypoints as its track's values to interpolate from."""
    valid = hand.valid
    if all_set(valid):
        memory.released_xy[:] = hand.keypoints
        memory.released_s.fill(hand.stamp_s)
        memory.released_scores[:] = hand.scores
    else:
        memory.released_xy[valid] = hand.keypoints[valid]
        memory.released_s[valid] = hand.stamp_s
        memory.released_scores[valid] = hand.scores[valid]
    memory.last_released = hand
