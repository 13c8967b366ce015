"""The temporal filter: per track, drop jitter, fill short gaps, smooth live output.

Input: frames whose hands carry track ids (:class:`hand_pose_refiner.filters.tracking.HandTracker`), in
strictly increasing stamp order. Output: the same frames, filtered, each released once the filter
has seen far enough ahead:

* **online** (live nodes): a frame is released when a frame ``online_delay_s`` newer arrives, and
  its processing uses nothing newer than that (bounded delay; 0 = fully causal);
* **offline** (datasets): frames are released at :meth:`TemporalFilter.flush` and may use the
  whole recording.

Per frame and track:

1. *Velocity limit* (at arrival, causal): a keypoint whose speed relative to its hand (its
   velocity minus the median velocity of the hand's keypoints, in hand sizes per second, from the
   real time stamps) exceeds ``max_keypoint_speed`` is REJECTED (reason ``keypoint_speed``).
   Subtracting the hand's own motion keeps fast but rigid hand movements.
2. *Confirmation*: a track's hands are output only once it has ``tracking.min_hits``
   observations within what the mode may see (reason ``unconfirmed_track`` otherwise).
3. *Gap filling*: a rejected or missing keypoint between two valid ones at most ``max_gap_s``
   apart is linearly interpolated in time (state INTERPOLATED); a frame in which a track was not
   detected at all gets an interpolated hand when the track is seen again within ``max_gap_s``.
4. *Smoothing* (online, ``smoothing``): One Euro filter per track.

The filter never raises on bad input: non-monotonic stamps, untracked hands and duplicate track
ids in a frame are counted and dropped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from hand_pose_refiner.arrays import all_set, any_set, vector_lengths
from hand_pose_refiner.config import TemporalFilterConfig, TrackingConfig
from hand_pose_refiner.filters.smoothing import OneEuroFilter
from hand_pose_refiner.filters.spatial import valid_keypoints
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands, box_diagonal
from hand_pose_refiner.skeleton import INTERPOLATED, MISSING, NUM_KEYPOINTS, REJECTED

_NS = 1e-9


class FrameStream(Protocol):
    """A filter stage that takes frames one by one and may hold some back until flushed."""

    def push(self, hands: FrameHands) -> list[FrameHands]: ...

    def flush(self) -> list[FrameHands]: ...


def process_stream(stage: FrameStream, frames: Iterable[FrameHands]) -> list[FrameHands]:
    """Push every frame through ``stage``, then flush it: the whole sequence, filtered."""
    released: list[FrameHands] = []
    for frame in frames:
        released.extend(stage.push(frame))
    released.extend(stage.flush())
    return released


class FilterMode(str, Enum):
    """Whether the filter may look ahead through the whole recording or only a bounded delay."""

    OFFLINE = "offline"
    ONLINE = "online"


@dataclass
class _Hand:
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


class _FrameRows:
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


def _median_rows(values: np.ndarray) -> np.ndarray:
    """``numpy.median(values, axis=0)`` for a few rows: the same values, without its overhead."""
    if not all_set(np.isfinite(values)):  # NaN handling and inf - inf: leave them to numpy
        return np.median(values, axis=0)
    ordered = np.sort(values, axis=0)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass
class _Frame:
    hands: FrameHands
    stamp_s: float
    by_track: dict[int, _Hand]
    rows: _FrameRows | None = None  # the arrays the hands of by_track are rows of

    @property
    def stamp_ns(self) -> int:
        return self.hands.stamp_ns


@dataclass
class _TrackMemory:
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
    last_released: _Hand | None = None
    smoother: OneEuroFilter | None = None


class TemporalFilter:
    """Filters tracked hands over time; see the module docstring for the steps."""

    def __init__(self, config: TemporalFilterConfig, tracking: TrackingConfig, mode: FilterMode,
                 stats: RejectionStats | None = None) -> None:
        self.config = config
        self.min_hits = tracking.min_hits
        self.mode = FilterMode(mode)
        self.stats = stats if stats is not None else RejectionStats(f"temporal_filter ({self.mode.value})")
        # Look-ahead in integer nanoseconds, so that "0.1 s later" is exact at any frame rate.
        self._horizon_ns = round(config.online_delay_s * 1e9) if self.mode is FilterMode.ONLINE else np.inf
        self._max_gap_ns = round(config.max_gap_s * 1e9)
        self._pending: deque[_Frame] = deque()
        self._tracks: dict[int, _TrackMemory] = {}
        self._last_stamp_ns: int | None = None

    def push(self, hands: FrameHands) -> list[FrameHands]:
        """Add a frame; return the frames this releases (oldest first; offline: none).

        The frame's arrays are converted (float64 keypoints, own copies of the states, scores and
        boxes) once for all its hands; each hand works on its rows.
        """
        if self._last_stamp_ns is not None and hands.stamp_ns <= self._last_stamp_ns:
            self.stats.reject("non_monotonic_stamp", 1, f"stamp {hands.stamp_ns} ns after "
                                                        f"{self._last_stamp_ns} ns")
            return []
        self._last_stamp_ns = hands.stamp_ns
        self.stats.add("frames_in")
        stamp_s = hands.stamp_ns * _NS
        if not self.config.enabled:
            self.stats.add("frames_out")
            return [hands]
        by_track: dict[int, _Hand] = {}
        rows = None
        if len(hands):
            rows = _FrameRows(hands)
            by_track = self._arrive(rows, self._rows_by_track(hands), stamp_s)
        self._pending.append(_Frame(hands, stamp_s, by_track, rows))
        return self._release_until(hands.stamp_ns - self._horizon_ns)

    def flush(self) -> list[FrameHands]:
        """Release every frame still held (end of the recording or stream)."""
        return self._release_until(np.inf)

    def process(self, frames: Iterable[FrameHands]) -> list[FrameHands]:
        """Push every frame, then flush: the whole sequence filtered."""
        return process_stream(self, frames)

    # -- arrival: the causal velocity check --------------------------------------------------

    def _rows_by_track(self, hands: FrameHands) -> dict[int, int]:
        """Each track's row in the frame; untracked hands and repeated track ids are counted and left out."""
        rows: dict[int, int] = {}
        for index, track_id in enumerate(hands.track_ids.tolist()):
            if track_id < 0:
                self.stats.reject("untracked_hand", 1, "hand without a track id")
            elif track_id in rows:
                self.stats.reject("duplicate_track", 1, f"track {track_id} twice in one frame")
            else:
                rows[track_id] = index
        return rows

    def _arrive(self, rows: _FrameRows, indices: dict[int, int], stamp_s: float) -> dict[int, _Hand]:
        """The frame's hands by track, speed-checked against their tracks' references (then updated)."""
        by_track: dict[int, _Hand] = {}
        memories: list[_TrackMemory] = []
        for track_id, index in indices.items():
            memory = self._tracks.get(track_id)
            if memory is None:
                memory = self._tracks[track_id] = _TrackMemory()
            by_track[track_id] = self._new_hand(memory, rows, index, stamp_s)
            memories.append(memory)
        hands = list(by_track.values())
        complete = [rows.all_valid[index] for index in indices.values()]
        jitters = self._too_fast_all(memories, hands, all(complete))
        for memory, hand, all_valid, jitter in zip(memories, hands, complete, jitters, strict=True):
            valid = hand.valid
            if jitter is not None:
                hand.states[jitter] = REJECTED
                hand.valid = valid = valid & ~jitter
                all_valid = False
                self.stats.reject("keypoint_speed", int(jitter.sum()))
            if all_valid:
                memory.reference_xy[:] = hand.keypoints
                memory.reference_s.fill(stamp_s)
            else:
                memory.reference_xy[valid] = hand.keypoints[valid]
                memory.reference_s[valid] = stamp_s
        return by_track

    @staticmethod
    def _new_hand(memory: _TrackMemory, rows: _FrameRows, index: int, stamp_s: float) -> _Hand:
        """A hand on its row of the frame, counted in its track; invalid keypoints MISSING unless REJECTED."""
        memory.arrivals += 1
        memory.last_seen_s = stamp_s
        hand = _Hand(stamp_s, rows.keypoints[index], rows.states[index], rows.scores[index],
                     rows.boxes[index], rows.detection_scores[index], rows.handedness[index],
                     rows.handedness_scores[index], rows.sizes[index] or memory.size, rows.valid[index])
        if not rows.all_valid[index]:
            hand.states[~hand.valid & (hand.states != REJECTED)] = MISSING
        memory.size = hand.size or memory.size
        return hand

    def _too_fast_all(self, memories: list[_TrackMemory], hands: list[_Hand],
                      all_valid: bool) -> list[np.ndarray | None]:
        """:meth:`_too_fast` for each hand of a frame (``all_valid``: every hand's keypoints are).

        In the common case, every keypoint of every hand comparable (valid, with a recent
        reference) and every velocity finite, all hands are measured in one set of numpy calls;
        otherwise each hand on its own. Same operations per element, so the same result.
        """
        speed_limit = self.config.max_keypoint_speed
        if len(hands) < 2 or speed_limit <= 0 or not all_valid or not all(h.size > 0 for h in hands):
            return [self._too_fast(m, h, h.valid) for m, h in zip(memories, hands, strict=True)]
        dt = hands[0].stamp_s - np.array([m.reference_s for m in memories])  # (hands, 21)
        velocity = None
        if all_set((dt > 0) & (dt <= max(self.config.max_gap_s, 1e-9))):
            keypoints = np.array([h.keypoints for h in hands])
            velocity = (keypoints - np.array([m.reference_xy for m in memories])) / dt[..., None]
        if velocity is None or not all_set(np.isfinite(velocity)):
            return [self._too_fast(m, h, h.valid) for m, h in zip(memories, hands, strict=True)]
        median = np.sort(velocity, axis=1)[:, NUM_KEYPOINTS // 2, None]  # odd count: the middle row
        sizes = np.array([h.size for h in hands])
        speed = vector_lengths(velocity - median) / sizes[:, None]
        fast = speed > speed_limit
        if not np.count_nonzero(fast):
            return [None] * len(hands)
        return [row if np.count_nonzero(row) else None for row in fast]

    def _too_fast(self, memory: _TrackMemory, hand: _Hand, valid: np.ndarray) -> np.ndarray | None:
        """Keypoints moving faster than the limit relative to their hand's median motion (None: none).

        Only the comparable keypoints (valid, with a recent reference) are measured; the median
        is taken by sorting their few velocities, as :func:`numpy.median` would but cheaper.
        """
        if hand.size <= 0 or self.config.max_keypoint_speed <= 0:
            return None
        dt = hand.stamp_s - memory.reference_s
        comparable = valid & (dt > 0) & (dt <= max(self.config.max_gap_s, 1e-9))
        count = np.count_nonzero(comparable)
        if count < 3:
            return None
        if count == NUM_KEYPOINTS:
            velocity = (hand.keypoints - memory.reference_xy) / dt[:, None]
        else:
            velocity = (hand.keypoints[comparable] - memory.reference_xy[comparable]) / dt[comparable, None]
        relative = velocity - _median_rows(velocity)
        speed = vector_lengths(relative) / hand.size
        fast = speed > self.config.max_keypoint_speed
        if not np.count_nonzero(fast):
            return None
        if count == NUM_KEYPOINTS:
            return fast
        jitter = np.zeros(NUM_KEYPOINTS, bool)
        jitter[comparable] = fast
        return jitter

    # -- release: confirmation, gap filling, smoothing ---------------------------------------

    def _release_until(self, newest_ns: float) -> list[FrameHands]:
        released = []
        while self._pending and self._pending[0].stamp_ns <= newest_ns:
            released.append(self._release(self._pending.popleft()))
        if self.mode is FilterMode.ONLINE and self._pending:
            self._forget_old_tracks(self._pending[-1].stamp_s)
        return released

    def _ahead(self, frame: _Frame, span_ns: float) -> list[_Frame]:
        """Held frames at most ``span_ns`` after ``frame`` that the mode may use."""
        limit = frame.stamp_ns + min(span_ns, self._horizon_ns)
        ahead = []
        for later in self._pending:
            if later.stamp_ns > limit:
                break
            ahead.append(later)
        return ahead

    def _confirmed(self, track_id: int, frame: _Frame) -> bool:
        """Whether the track has ``min_hits`` observations among those the mode may see."""
        memory = self._tracks[track_id]
        if self.mode is FilterMode.OFFLINE:
            return memory.arrivals >= self.min_hits
        if memory.released >= self.min_hits:
            return True
        visible = self._ahead(frame, self._horizon_ns)
        return memory.released + sum(track_id in f.by_track for f in visible) >= self.min_hits

    def _release(self, frame: _Frame) -> FrameHands:
        ahead = self._ahead(frame, self._max_gap_ns)
        rows: dict[int, _Hand] = {}
        for track_id, hand in frame.by_track.items():
            memory = self._tracks[track_id]
            memory.released += 1
            if not self._confirmed(track_id, frame):
                self.stats.reject("unconfirmed_track", 1, f"track {track_id} below {self.min_hits} hits")
                continue
            self._fill_keypoint_gaps(track_id, hand, ahead)
            rows[track_id] = hand
        for track_id, memory in self._tracks.items():
            if track_id not in frame.by_track and memory.last_released is not None:
                bridged = self._bridge(track_id, memory.last_released, frame.stamp_s, ahead)
                if bridged is not None:
                    rows[track_id] = bridged
                    self.stats.add("interpolated_hands")
        for track_id, hand in rows.items():
            self._remember(self._tracks[track_id], hand)
            if self.mode is FilterMode.ONLINE and self.config.smoothing:
                self._smooth(self._tracks[track_id], hand)
        self.stats.add("frames_out")
        self.stats.add("hands_out", len(rows))
        return self._to_frame_hands(frame, rows)

    def _next_valid(self, track_id: int, keypoint: int, ahead: list[_Frame],
                    latest_s: float) -> tuple[float, np.ndarray, float] | None:
        """The next valid observation of one keypoint no later than ``latest_s``."""
        for later in ahead:
            if later.stamp_s > latest_s:
                return None
            hand = later.by_track.get(track_id)
            if hand is not None and hand.valid[keypoint]:
                return later.stamp_s, hand.keypoints[keypoint], float(hand.scores[keypoint])
        return None

    def _fill_keypoint_gaps(self, track_id: int, hand: _Hand, ahead: list[_Frame]) -> None:
        if all_set(hand.valid):
            return
        memory = self._tracks[track_id]
        for keypoint in np.flatnonzero(~hand.valid).tolist():
            before_s = memory.released_s[keypoint]
            if not np.isfinite(before_s):
                continue
            after = self._next_valid(track_id, keypoint, ahead, before_s + self.config.max_gap_s)
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
            self.stats.add("interpolated_keypoints")

    def _bridge(self, track_id: int, before: _Hand, stamp_s: float, ahead: list[_Frame]) -> _Hand | None:
        """An interpolated hand for a frame in which the track was not detected, if the gap is short."""
        if stamp_s - before.stamp_s > self.config.max_gap_s:
            return None
        after = next((f.by_track[track_id] for f in ahead if track_id in f.by_track), None)
        if after is None or after.stamp_s - before.stamp_s > self.config.max_gap_s:
            return None
        weight = (stamp_s - before.stamp_s) / (after.stamp_s - before.stamp_s)

        def lerp(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
            return np.asarray(a) + weight * (np.asarray(b) - np.asarray(a))

        both = before.valid & after.valid
        states = np.where(both, INTERPOLATED, MISSING).astype(np.uint8)
        keypoints = np.where(both[:, None], lerp(before.keypoints, after.keypoints), np.nan)
        return _Hand(stamp_s, keypoints, states, np.where(both, lerp(before.scores, after.scores), 0.0),
                     lerp(before.box, after.box), float(lerp(before.detection_score, after.detection_score)),
                     after.handedness, after.handedness_score, float(lerp(before.size, after.size)),
                     valid_keypoints(states) & ~np.isnan(keypoints).any(axis=-1))

    @staticmethod
    def _remember(memory: _TrackMemory, hand: _Hand) -> None:
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

    def _smooth(self, memory: _TrackMemory, hand: _Hand) -> None:
        if memory.smoother is None:
            memory.smoother = OneEuroFilter(self.config.one_euro_min_cutoff_hz, self.config.one_euro_beta,
                                            self.config.one_euro_d_cutoff_hz)
        valid = hand.valid
        smoothed = memory.smoother(hand.keypoints, valid, hand.stamp_s, hand.size)  # a new array
        hand.keypoints = smoothed if all_set(valid) else np.where(valid[:, None], smoothed, hand.keypoints)

    def _forget_old_tracks(self, newest_s: float) -> None:
        """Drop memories of tracks gone for longer than any gap could bridge (online mode)."""
        keep_s = self.config.max_gap_s + self.config.online_delay_s + 1.0
        for track_id in [t for t, m in self._tracks.items() if newest_s - m.last_seen_s > keep_s]:
            del self._tracks[track_id]

    @staticmethod
    def _to_frame_hands(frame: _Frame, rows: dict[int, _Hand]) -> FrameHands:
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
