"""Cutting per-track pose streams into classification windows (online, never raising).

Shared by the live :class:`~hand_pose_refiner.activity.recognizer.ActivityRecognizer` and the
dataset builder, so a model is trained on exactly the windows it will see.

Per track id, poses are buffered in arrival order. A window is the newest ``window_frames``
poses; it is due when the buffer is full for the first time and then every ``stride_frames``
new poses. How bad input is handled (each case counted in :class:`RejectionStats` under the
reason given; nothing raises):

=============================  ====================================================  ===================
input                          handling                                              reason
=============================  ====================================================  ===================
frame not newer than the last  dropped                                               non_monotonic_stamp
per-hand arrays that disagree  frame dropped                                         malformed_frame
hand without a track id (-1)   dropped                                               untracked_hand
a track id twice in a frame    the second one dropped                                duplicate_track
pose without a valid keypoint  dropped (the track counts as unseen in that frame)    empty_pose
NaN/rejected/missing keypoint  kept, masked in the window (zero features, flag 0)    (masked_keypoints)
pause > ``max_gap_s``          buffer dropped when the next frame shows the pause    gap
(the track paused or ended)    (a returning track starts afresh): no window spans it
fewer poses than a window      wait; a run that ends in such a pause before filling  short_track
                               a window is never classified (and never padded)
window with too few valid kp   skipped (valid fraction < ``min_valid_fraction``),    low_valid_fraction
                               retried after ``stride_frames`` more poses
window without a palm size     skipped (nothing to normalise by), retried likewise   no_palm
=============================  ====================================================  ===================

No window is ever padded: a short or broken window would be a different input from the ones
the model was trained on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hand_pose_refiner.activity.features import usable_keypoints, window_features
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, Handedness


@dataclass(frozen=True)
class Window:
    """One due window of one track: its poses and their features ``(C, T, 21)``."""

    track_id: int
    stamps_ns: np.ndarray  # (T,)
    keypoints: np.ndarray  # (T, 21, 2)
    valid: np.ndarray  # (T, 21)
    handedness: int
    features: np.ndarray

    @property
    def start_ns(self) -> int:
        return int(self.stamps_ns[0])

    @property
    def end_ns(self) -> int:
        return int(self.stamps_ns[-1])


@dataclass
class _TrackBuffer:
    stamps: deque[int]
    keypoints: deque[np.ndarray]
    valid: deque[np.ndarray]
    handedness: deque[int]
    run_length: int = 0  # poses since the buffer (re)started
    since_attempt: int = 0  # poses since the last window attempt
    attempted: bool = False  # a window was attempted in this run
    last_stamp_ns: int = field(default=-(2**62))


class WindowCutter:
    """Buffers each track's poses and hands out due windows; see the module docstring."""

    def __init__(self, window_frames: int, stride_frames: int, max_gap_s: float,
                 min_valid_fraction: float, stats: RejectionStats | None = None) -> None:
        if window_frames < 2 or stride_frames < 1:
            raise ValueError(f"window_frames must be >= 2 and stride_frames >= 1, got "
                             f"{window_frames} and {stride_frames}")
        self.window_frames = int(window_frames)
        self.stride_frames = int(stride_frames)
        self.max_gap_ns = round(max_gap_s * 1e9)
        self.min_valid_fraction = float(min_valid_fraction)
        self.stats = stats if stats is not None else RejectionStats("activity")
        self._tracks: dict[int, _TrackBuffer] = {}
        self._last_stamp_ns: int | None = None

    @property
    def track_ids(self) -> list[int]:
        """Tracks with buffered poses."""
        return list(self._tracks)

    def reset(self) -> None:
        """Forget every track (a new stream); the stats are kept."""
        self._tracks.clear()
        self._last_stamp_ns = None

    def push(self, frame: FrameHands) -> list[Window]:
        """Add one frame's tracked hands; return the windows that became due."""
        stamp = int(frame.stamp_ns)
        if self._last_stamp_ns is not None and stamp <= self._last_stamp_ns:
            self.stats.reject("non_monotonic_stamp", 1, f"stamp {stamp} ns after {self._last_stamp_ns} ns")
            return []
        self._last_stamp_ns = stamp
        self.stats.add("frames")
        self._expire(stamp)
        try:
            keypoints = np.asarray(frame.keypoints, np.float64).reshape(-1, NUM_KEYPOINTS, 2)
            states = np.asarray(frame.keypoint_states).reshape(-1, NUM_KEYPOINTS)
            track_ids = np.asarray(frame.track_ids, np.int64).reshape(-1)
            handedness = np.asarray(frame.handedness).reshape(-1)
            if not (len(keypoints) == len(states) == len(track_ids) == len(handedness)):
                raise ValueError("per-hand arrays of different lengths")
        except (ValueError, TypeError) as exc:
            self.stats.reject("malformed_frame", 1, str(exc))
            return []
        valid = usable_keypoints(keypoints, states)
        due: list[Window] = []
        seen: set[int] = set()
        for index, track_id in enumerate(track_ids.tolist()):
            if track_id < 0:
                self.stats.reject("untracked_hand", 1, "hand without a track id")
                continue
            if track_id in seen:
                self.stats.reject("duplicate_track", 1, f"track {track_id} twice at {stamp} ns")
                continue
            seen.add(track_id)
            if not valid[index].any():
                self.stats.reject("empty_pose", 1, f"track {track_id}: no valid keypoint")
                continue
            self.stats.add("poses")
            self.stats.add("masked_keypoints", int((~valid[index]).sum()))
            window = self._add(track_id, stamp, keypoints[index], valid[index], int(handedness[index]))
            if window is not None:
                due.append(window)
        return due

    def _expire(self, stamp: int) -> None:
        """Drop the buffers of tracks without a pose for longer than ``max_gap_s``.

        Online, a pause and the end of a track look the same; either way no window may span it.
        """
        for track_id in [t for t, b in self._tracks.items() if stamp - b.last_stamp_ns > self.max_gap_ns]:
            buffer = self._tracks.pop(track_id)
            self.stats.reject("gap", 1, f"track {track_id}: {(stamp - buffer.last_stamp_ns) * 1e-9:.3f} s "
                                        f"without a pose")
            if not buffer.attempted:
                self.stats.reject("short_track", 1, f"track {track_id}: {buffer.run_length} poses before "
                                                    f"a pause, fewer than a window")

    def _add(self, track_id: int, stamp: int, keypoints: np.ndarray, valid: np.ndarray,
             handedness: int) -> Window | None:
        buffer = self._tracks.get(track_id)
        if buffer is None:
            size = self.window_frames
            buffer = _TrackBuffer(deque(maxlen=size), deque(maxlen=size), deque(maxlen=size),
                                  deque(maxlen=size))
            self._tracks[track_id] = buffer
        buffer.stamps.append(stamp)
        buffer.keypoints.append(keypoints)
        buffer.valid.append(valid)
        buffer.handedness.append(handedness)
        buffer.last_stamp_ns = stamp
        buffer.run_length += 1
        buffer.since_attempt += 1
        if len(buffer.stamps) < self.window_frames:
            return None
        if buffer.attempted and buffer.since_attempt < self.stride_frames:
            return None
        buffer.attempted = True
        buffer.since_attempt = 0
        return self._cut(track_id, buffer)

    def _cut(self, track_id: int, buffer: _TrackBuffer) -> Window | None:
        self.stats.add("windows")
        stamps = np.fromiter(buffer.stamps, np.int64, len(buffer.stamps))
        keypoints = np.stack(buffer.keypoints)
        valid = np.stack(buffer.valid)
        fraction = float(valid.mean())
        if fraction < self.min_valid_fraction:
            self.stats.reject("low_valid_fraction", 1, f"track {track_id}: {fraction:.2f} of the "
                                                       f"keypoints valid")
            return None
        votes = np.bincount(np.fromiter(buffer.handedness, np.int64, len(buffer.handedness)), minlength=3)
        handedness = int(np.argmax(votes[1:]) + 1) if votes[1:].any() else int(Handedness.UNKNOWN)
        features = window_features(stamps, keypoints, valid, mirror=handedness == Handedness.LEFT)
        if features is None:
            self.stats.reject("no_palm", 1, f"track {track_id}: no pose with a measurable palm")
            return None
        return Window(track_id, stamps, keypoints, valid, handedness, features)
