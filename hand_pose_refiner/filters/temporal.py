"""The temporal filter: per track, drop jitter, fill short gaps, smooth live output.

Input: frames whose hands carry track ids (:class:`hand_pose_refiner.filters.tracking.HandTracker`), in
strictly increasing stamp order. Output: the same frames, filtered, each released once the filter
has seen far enough ahead:

* **online** (live nodes): a frame is released when a frame ``online_delay_s`` newer arrives, and
  its processing uses nothing newer than that (bounded delay; 0 = fully causal);
* **offline** (datasets): frames are released at :meth:`TemporalFilter.flush` and may use the
  whole recording.

Per frame and track:

1. *Velocity limit* (at arrival, causal; :mod:`.velocity_gate`): a keypoint whose speed relative
   to its hand (its velocity minus the median velocity of the hand's keypoints, in hand sizes per
   second, from the real time stamps) exceeds ``max_keypoint_speed`` is REJECTED (reason
   ``keypoint_speed``). Subtracting the hand's own motion keeps fast but rigid hand movements.
2. *Confirmation*: a track's hands are output only once it has ``tracking.min_hits``
   observations within what the mode may see (reason ``unconfirmed_track`` otherwise).
3. *Gap filling* (:mod:`.interpolation`): a rejected or missing keypoint between two valid ones
   at most ``max_gap_s`` apart is linearly interpolated in time (state INTERPOLATED); a frame in
   which a track was not detected at all gets an interpolated hand when the track is seen again
   within ``max_gap_s``.
4. *Smoothing* (online, ``smoothing``): One Euro filter per track (:mod:`.smoothing`).

This module holds the filter itself: arrival, holding frames back, confirmation and release;
the per-frame and per-track data it works on are in :mod:`.temporal_state`.

The filter never raises on bad input: non-monotonic stamps, untracked hands and duplicate track
ids in a frame are counted and dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Protocol

import numpy as np

from hand_pose_refiner.arrays import all_set
from hand_pose_refiner.config import TemporalFilterConfig, TrackingConfig
from hand_pose_refiner.filters.interpolation import bridge, fill_keypoint_gaps, remember_released
from hand_pose_refiner.filters.smoothing import OneEuroFilter
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal_state import (
    FrameRows,
    HeldFrame,
    TrackHand,
    TrackMemory,
    released_frame,
)
from hand_pose_refiner.filters.velocity_gate import gate_arrivals
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import MISSING, REJECTED

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
        self._pending: deque[HeldFrame] = deque()
        self._tracks: dict[int, TrackMemory] = {}
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
        by_track: dict[int, TrackHand] = {}
        rows = None
        if len(hands):
            rows = FrameRows(hands)
            by_track = self._arrive(rows, self._rows_by_track(hands), stamp_s)
        self._pending.append(HeldFrame(hands, stamp_s, by_track, rows))
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

    def _arrive(self, rows: FrameRows, indices: dict[int, int], stamp_s: float) -> dict[int, TrackHand]:
        """The frame's hands by track, speed-checked against their tracks' references (then updated)."""
        by_track: dict[int, TrackHand] = {}
        memories: list[TrackMemory] = []
        for track_id, index in indices.items():
            memory = self._tracks.get(track_id)
            if memory is None:
                memory = self._tracks[track_id] = TrackMemory()
            by_track[track_id] = self._new_hand(memory, rows, index, stamp_s)
            memories.append(memory)
        complete = [rows.all_valid[index] for index in indices.values()]
        gate_arrivals(memories, list(by_track.values()), complete, stamp_s, self.config, self.stats)
        return by_track

    @staticmethod
    def _new_hand(memory: TrackMemory, rows: FrameRows, index: int, stamp_s: float) -> TrackHand:
        """A hand on its row of the frame, counted in its track; invalid keypoints MISSING unless REJECTED."""
        memory.arrivals += 1
        memory.last_seen_s = stamp_s
        hand = TrackHand(stamp_s, rows.keypoints[index], rows.states[index], rows.scores[index],
                         rows.boxes[index], rows.detection_scores[index], rows.handedness[index],
                         rows.handedness_scores[index], rows.sizes[index] or memory.size, rows.valid[index])
        if not rows.all_valid[index]:
            hand.states[~hand.valid & (hand.states != REJECTED)] = MISSING
        memory.size = hand.size or memory.size
        return hand

    # -- release: confirmation, gap filling, smoothing ---------------------------------------

    def _release_until(self, newest_ns: float) -> list[FrameHands]:
        released = []
        while self._pending and self._pending[0].stamp_ns <= newest_ns:
            released.append(self._release(self._pending.popleft()))
        if self.mode is FilterMode.ONLINE and self._pending:
            self._forget_old_tracks(self._pending[-1].stamp_s)
        return released

    def _ahead(self, frame: HeldFrame, span_ns: float) -> list[HeldFrame]:
        """Held frames at most ``span_ns`` after ``frame`` that the mode may use."""
        limit = frame.stamp_ns + min(span_ns, self._horizon_ns)
        ahead = []
        for later in self._pending:
            if later.stamp_ns > limit:
                break
            ahead.append(later)
        return ahead

    def _confirmed(self, track_id: int, frame: HeldFrame) -> bool:
        """Whether the track has ``min_hits`` observations among those the mode may see."""
        memory = self._tracks[track_id]
        if self.mode is FilterMode.OFFLINE:
            return memory.arrivals >= self.min_hits
        if memory.released >= self.min_hits:
            return True
        visible = self._ahead(frame, self._horizon_ns)
        return memory.released + sum(track_id in f.by_track for f in visible) >= self.min_hits

    def _release(self, frame: HeldFrame) -> FrameHands:
        ahead = self._ahead(frame, self._max_gap_ns)
        rows: dict[int, TrackHand] = {}
        for track_id, hand in frame.by_track.items():
            memory = self._tracks[track_id]
            memory.released += 1
            if not self._confirmed(track_id, frame):
                self.stats.reject("unconfirmed_track", 1, f"track {track_id} below {self.min_hits} hits")
                continue
            fill_keypoint_gaps(memory, track_id, hand, ahead, self.config.max_gap_s, self.stats)
            rows[track_id] = hand
        for track_id, memory in self._tracks.items():
            if track_id not in frame.by_track and memory.last_released is not None:
                bridged = bridge(track_id, memory.last_released, frame.stamp_s, ahead, self.config.max_gap_s)
                if bridged is not None:
                    rows[track_id] = bridged
                    self.stats.add("interpolated_hands")
        for track_id, hand in rows.items():
            remember_released(self._tracks[track_id], hand)
            if self.mode is FilterMode.ONLINE and self.config.smoothing:
                self._smooth(self._tracks[track_id], hand)
        self.stats.add("frames_out")
        self.stats.add("hands_out", len(rows))
        return released_frame(frame, rows)

    def _smooth(self, memory: TrackMemory, hand: TrackHand) -> None:
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
