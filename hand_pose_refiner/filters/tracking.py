"""Hand tracking: stable ids for the same hand across frames.

Each frame's hands are matched to the live tracks by optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`) on a cost in *hand sizes*: the mean distance
between the hand's keypoints and the track's keypoints predicted to the frame's stamp with a
constant-velocity model (box centres when fewer than three keypoints are shared), plus a penalty
when both are confident about opposite handedness. Matches costlier than
``tracking.max_match_distance`` are refused.

Birth: every unmatched hand starts a new track (the temporal filter outputs a track only after
``tracking.min_hits`` observations). Death: a track unmatched for longer than
``tracking.max_missed_s`` ends; its id is never reused. Handedness: each track accumulates the
score-weighted votes of its hands and every hand of the track reports the majority.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from hand_pose_refiner.arrays import all_set, vector_lengths
from hand_pose_refiner.config import TrackingConfig
from hand_pose_refiner.filters.spatial import valid_keypoints
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands, boxes_from_keypoints
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, Handedness

_NS = 1e-9
_HANDEDNESS_PENALTY = 0.5  # hand sizes added when track and hand disagree confidently
_CONFIDENT = 0.7
_UNMATCHABLE = 1e9


@dataclass
class Track:
    """What the tracker remembers of one hand."""

    track_id: int
    keypoints: np.ndarray  # (21, 2) last known position of each keypoint (NaN if never seen)
    center: np.ndarray  # (2,) centre of the keypoint box
    size: float  # keypoint-box diagonal, pixels
    stamp_ns: int  # last match
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels per second
    hits: int = 1
    # Per Handedness value. Python floats: read and added to once per hand and frame, where numpy
    # scalars cost more than the arithmetic (the same IEEE additions, so the same sums).
    votes: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def handedness(self) -> tuple[int, float]:
        """Majority handedness and its share of the votes (UNKNOWN, 0 without votes)."""
        left, right = self.votes[Handedness.LEFT], self.votes[Handedness.RIGHT]
        if left + right <= 0:
            return int(Handedness.UNKNOWN), 0.0
        if right >= left:
            return int(Handedness.RIGHT), right / (left + right)
        return int(Handedness.LEFT), left / (left + right)


class HandTracker:
    """Assigns track ids to the hands of successive frames (stamps strictly increasing)."""

    def __init__(self, config: TrackingConfig, stats: RejectionStats | None = None) -> None:
        self.config = config
        self.stats = stats if stats is not None else RejectionStats("tracking")
        self.tracks: dict[int, Track] = {}
        self._next_id = 0
        self._last_stamp_ns: int | None = None

    def update(self, hands: FrameHands) -> FrameHands:
        """The frame's hands with ``track_ids`` and the tracks' consistent handedness set.

        A frame whose stamp is not after the previous one is counted and returned untracked.
        """
        if self._last_stamp_ns is not None and hands.stamp_ns <= self._last_stamp_ns:
            self.stats.reject("non_monotonic_stamp", 1, f"stamp {hands.stamp_ns} ns after "
                                                        f"{self._last_stamp_ns} ns")
            return hands.derive(track_ids=np.full(len(hands), -1, np.int64))
        self._last_stamp_ns = hands.stamp_ns
        self._end_stale_tracks(hands.stamp_ns)
        valid = _valid_keypoints(hands)
        boxes = boxes_from_keypoints(hands.keypoints, valid, empty=0.0, finite=True)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])

        track_ids = self._match(hands, valid, centers)
        every_valid = all_set(valid)
        sizes_list = sizes.tolist()
        for index, track_id in enumerate(track_ids):
            if track_id < 0:
                track_id = track_ids[index] = self._birth(hands.stamp_ns)
            self._absorb(self.tracks[track_id], hands, index, valid[index], every_valid,
                         centers[index], sizes_list[index])

        majority = [self.tracks[track_id].handedness() for track_id in track_ids]
        handedness = np.array([label for label, _ in majority], np.uint8)
        handedness_scores = np.array([share for _, share in majority], np.float32)
        self.stats.add("frames")
        self.stats.add("hands", len(hands))
        return hands.derive(track_ids=np.array(track_ids, np.int64), handedness=handedness,
                            handedness_scores=handedness_scores)

    def _match(self, hands: FrameHands, valid: np.ndarray, centers: np.ndarray) -> list[int]:
        """Per hand, the id of the live track it continues, or -1 (a new track).

        A Python list: the caller walks it hand by hand, where numpy scalars would cost more.
        """
        track_ids = [-1] * len(hands)
        live = list(self.tracks.values())
        if live and track_ids:
            cost = self._cost(live, hands, valid, centers)
            rows, cols = linear_sum_assignment(cost)
            for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                if cost[row, col] <= self.config.max_match_distance:
                    track_ids[col] = live[row].track_id
        return track_ids

    def _end_stale_tracks(self, stamp_ns: int) -> None:
        limit = self.config.max_missed_s
        for track_id in [t.track_id for t in self.tracks.values()
                         if (stamp_ns - t.stamp_ns) * _NS > limit]:
            del self.tracks[track_id]
            self.stats.add("tracks_ended")

    def _birth(self, stamp_ns: int) -> int:
        track_id = self._next_id
        self._next_id += 1
        self.tracks[track_id] = Track(track_id, np.full((21, 2), np.nan), np.zeros(2), 0.0,
                                      stamp_ns, hits=0)
        self.stats.add("tracks_started")
        return track_id

    def _cost(self, live: list[Track], hands: FrameHands, valid: np.ndarray,
              centers: np.ndarray) -> np.ndarray:
        """``(tracks, hands)`` matching cost in hand sizes; unmatchable pairs get a huge cost."""
        stamp_ns = hands.stamp_ns
        dt = np.array([(stamp_ns - t.stamp_ns) * _NS for t in live])
        motion = np.array([t.velocity for t in live]) * dt[:, None]  # (tracks, 2) pixels since the match
        predicted = np.array([t.keypoints for t in live]) + motion[:, None, :]
        size = np.maximum(np.array([t.size for t in live]), 1.0)

        difference = predicted[:, None] - hands.keypoints[None]  # (tracks, hands, 21, 2)
        gaps = np.hypot(difference[..., 0], difference[..., 1])
        known = np.isfinite(predicted)
        if all_set(known) and all_set(valid):  # the usual case: every keypoint pair is compared
            cost = gaps.sum(axis=-1) / NUM_KEYPOINTS / size[:, None]
        else:
            shared = known.all(axis=-1)[:, None, :] & valid[None, :, :]  # (tracks, hands, 21)
            gaps = np.where(shared, gaps, 0.0)
            shared_count = shared.sum(axis=-1)
            keypoint_cost = gaps.sum(axis=-1) / np.maximum(shared_count, 1)
            by_keypoints = shared_count >= 3  # else: the predicted box centres
            predicted_centers = np.array([t.center for t in live]) + motion
            center_offset = predicted_centers[:, None] - centers[None]
            center_cost = vector_lengths(center_offset)
            cost = np.where(by_keypoints, keypoint_cost, center_cost) / size[:, None]

        hand_labels = hands.handedness.tolist()
        # Compared as float32, like the scores (a score of exactly float32(0.7) is confident).
        confident_hand = [label != Handedness.UNKNOWN and confident for label, confident
                          in zip(hand_labels, (hands.handedness_scores >= _CONFIDENT).tolist(), strict=True)]
        for row, track in enumerate(live):  # a handful of pairs: plain Python beats array set-up
            label, share = track.handedness()
            if share < _CONFIDENT:
                continue
            for col, hand_label in enumerate(hand_labels):
                if confident_hand[col] and hand_label != label:
                    cost[row, col] += _HANDEDNESS_PENALTY
        return np.where(np.isfinite(cost), cost, _UNMATCHABLE)

    @staticmethod
    def _absorb(track: Track, hands: FrameHands, index: int, valid: np.ndarray, every_valid: bool,
                center: np.ndarray, size: float) -> None:
        """Update a track with its newly matched hand (``every_valid``: all hands' keypoints are)."""
        dt = (hands.stamp_ns - track.stamp_ns) * _NS
        if track.hits > 0 and dt > 0:
            observed_velocity = (center - track.center) / dt
            track.velocity = 0.5 * track.velocity + 0.5 * observed_velocity
        if every_valid or all_set(valid):
            track.keypoints = hands.keypoints[index].astype(np.float64)
        else:
            track.keypoints = np.where(valid[:, None], hands.keypoints[index], track.keypoints)
        track.center = center
        if size > 0:
            track.size = size
        track.stamp_ns = hands.stamp_ns
        track.hits += 1
        label = int(hands.handedness[index])
        if label != Handedness.UNKNOWN:
            score = float(hands.handedness_scores[index])
            track.votes[label] += min(max(score, 0.0), 1.0) if score == score else 0.0  # NaN: no vote


def _valid_keypoints(hands: FrameHands) -> np.ndarray:
    """``(n, 21)`` keypoints the tracker may use: valid state and finite coordinates.

    The finiteness test is reduced per keypoint only when some coordinate is not finite.
    """
    valid = valid_keypoints(hands.keypoint_states)
    finite = np.isfinite(hands.keypoints)
    if all_set(finite):
        return valid
    return valid & finite.all(axis=-1)
