"""The temporal filter's velocity gate (step 1, at arrival, causal): keypoints moving too fast.

A keypoint whose speed relative to its hand (its velocity since the track's reference minus the
median velocity of the hand's keypoints, in hand sizes per second, from the real time stamps)
exceeds ``max_keypoint_speed`` is REJECTED (reason ``keypoint_speed``). Subtracting the hand's
own motion keeps fast but rigid hand movements. A keypoint is compared only against a
reference at most ``max_gap_s`` old; the accepted keypoints become the track's new references.
"""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.arrays import all_set, vector_lengths
from hand_pose_refiner.config import TemporalFilterConfig
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal_state import TrackHand, TrackMemory
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, REJECTED


def gate_arrivals(memories: list[TrackMemory], hands: list[TrackHand], complete: list[bool],
                  stamp_s: float, config: TemporalFilterConfig, stats: RejectionStats) -> None:
    """Reject each arriving hand's too-fast keypoints (counted), then update its track's references.

    ``complete``: per hand, whether all its keypoints are valid.
    """
    jitters = keypoints_too_fast(memories, hands, all(complete), config)
    for memory, hand, all_valid, jitter in zip(memories, hands, complete, jitters, strict=True):
        valid = hand.valid
        if jitter is not None:
            hand.states[jitter] = REJECTED
            hand.valid = valid = valid & ~jitter
            all_valid = False
            stats.reject("keypoint_speed", int(jitter.sum()))
        if all_valid:
            memory.reference_xy[:] = hand.keypoints
            memory.reference_s.fill(stamp_s)
        else:
            memory.reference_xy[valid] = hand.keypoints[valid]
            memory.reference_s[valid] = stamp_s


def keypoints_too_fast(memories: list[TrackMemory], hands: list[TrackHand], all_valid: bool,
                       config: TemporalFilterConfig) -> list[np.ndarray | None]:
    """:func:`hand_too_fast` for each hand of a frame (``all_valid``: every hand's keypoints are).

    In the common case, every keypoint of every hand comparable (valid, with a recent
    reference) and every velocity finite, all hands are measured in one set of numpy calls;
    otherwise each hand on its own. Same operations per element, so the same result.
    """
    speed_limit = config.max_keypoint_speed
    if len(hands) < 2 or speed_limit <= 0 or not all_valid or not all(h.size > 0 for h in hands):
        return [hand_too_fast(m, h, h.valid, config) for m, h in zip(memories, hands, strict=True)]
    dt = hands[0].stamp_s - np.array([m.reference_s for m in memories])  # (hands, 21)
    velocity = None
    if all_set((dt > 0) & (dt <= max(config.max_gap_s, 1e-9))):
        keypoints = np.array([h.keypoints for h in hands])
        velocity = (keypoints - np.array([m.reference_xy for m in memories])) / dt[..., None]
    if velocity is None or not all_set(np.isfinite(velocity)):
        return [hand_too_fast(m, h, h.valid, config) for m, h in zip(memories, hands, strict=True)]
    median = np.sort(velocity, axis=1)[:, NUM_KEYPOINTS // 2, None]  # odd count: the middle row
    sizes = np.array([h.size for h in hands])
    speed = vector_lengths(velocity - median) / sizes[:, None]
    fast = speed > speed_limit
    if not np.count_nonzero(fast):
        return [None] * len(hands)
    return [row if np.count_nonzero(row) else None for row in fast]


def hand_too_fast(memory: TrackMemory, hand: TrackHand, valid: np.ndarray,
                  config: TemporalFilterConfig) -> np.ndarray | None:
    """Keypoints moving faster than the limit relative to their hand's median motion (None: none).

    Only the comparable keypoints (valid, with a recent reference) are measured; the median
    is taken by sorting their few velocities, as :func:`numpy.median` would but cheaper.
    """
    if hand.size <= 0 or config.max_keypoint_speed <= 0:
        return None
    dt = hand.stamp_s - memory.reference_s
    comparable = valid & (dt > 0) & (dt <= max(config.max_gap_s, 1e-9))
    count = np.count_nonzero(comparable)
    if count < 3:
        return None
    if count == NUM_KEYPOINTS:
        velocity = (hand.keypoints - memory.reference_xy) / dt[:, None]
    else:
        velocity = (hand.keypoints[comparable] - memory.reference_xy[comparable]) / dt[comparable, None]
    relative = velocity - _median_rows(velocity)
    speed = vector_lengths(relative) / hand.size
    fast = speed > config.max_keypoint_speed
    if not np.count_nonzero(fast):
        return None
    if count == NUM_KEYPOINTS:
        return fast
    jitter = np.zeros(NUM_KEYPOINTS, bool)
    jitter[comparable] = fast
    return jitter


def _median_rows(values: np.ndarray) -> np.ndarray:
    """``numpy.median(values, axis=0)`` for a few rows: the same values, without its overhead."""
    if not all_set(np.isfinite(values)):  # NaN handling and inf - inf: leave them to numpy
        return np.median(values, axis=0)
    ordered = np.sort(values, axis=0)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
