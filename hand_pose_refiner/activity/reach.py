"""Online reach recognition: per-frame phase, reach-onset events, time to grasp and grasp size.

A cobot controller acts on "the worker has started reaching" and "the hand will close on the part
in N ms" as they happen, so this recogniser is causal and per frame, unlike the window
classifier of :mod:`~hand_pose_refiner.activity.recognizer`: every filtered pose of a track goes
through a small causal temporal convolution network
(:class:`~hand_pose_refiner.activity.reach_model.ReachModel`) with two heads, and a size
classifier beside it:

* phase: idle / reach / grasp-and-move (:data:`~hand_pose_refiner.activity.reach_features.PHASE_NAMES`);
* time to grasp: seconds until the hand closes on the part, meaningful during a reach;
* grasp size: which part size the hand is shaped for, S / M / L (the class names are stored in
  the checkpoint), from a separate classifier calibrated per person
  (:mod:`~hand_pose_refiner.activity.reach_size_classifier`, which says why).

Per-frame features (:mod:`~hand_pose_refiner.activity.reach_features`) are one hand's shape in
palm sizes around its palm centre, its grip aperture, where the palm is in the image, how big it
is, how fast it moves (per second of real stamp time) and how far it has moved since the track
began.

:class:`ReachRecognizer` adds the onset event: a reach starts when the reach probability stays
above ``onset_threshold`` for ``onset_frames`` poses in a row while the track was idle; the track
counts as idle again only after ``rearm_s`` seconds of idle decisions, so a noisy reach does not
fire twice. Checkpoints are safetensors files with the settings in their metadata
(:mod:`~hand_pose_refiner.activity.reach_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from hand_pose_refiner.activity.reach_features import (
    GRASP_MOVE,
    IDLE,
    PHASE_NAMES,
    REACH,
    ReachFeatures,
    frame_hand_features,
)
from hand_pose_refiner.activity.reach_model import ReachModel, ReachOutput
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration
from hand_pose_refiner.hands import FrameHands


@dataclass(frozen=True)
class ReachSettings:
    """How probabilities become events: the onset rule and when a size is said."""

    onset_threshold: float = 0.5
    onset_frames: int = 2
    rearm_s: float = 0.5
    size_confidence: float = 0.8
    # The size may be said only this long after the detected reach end: the classifier is fitted
    # to the closing hand, and as the hand then grips, lifts and moves the part its confident
    # scores go wrong more often (leave-one-subject-out, pooled, p >= 0.8: within 0.1 s 79 % right
    # in 58 % of reaches; at the end frame only about 88 % in 43 %; any time after 68 % in 96 %).
    size_window_s: float = 0.1
    max_gap_s: float = 0.5


@dataclass(frozen=True)
class ReachResult:
    """One track's decision for one pose (the content of a HandActivity message).

    ``onset`` is True on the one decision at which a reach was detected to start; ``reach_end``
    on the one at which that reach was first seen to turn into grasp-and-move (the hand closed);
    ``time_to_grasp_s`` is NaN outside a reach; ``grasp_size`` is empty until, within
    ``size_window_s`` after the reach end, the size probability reaches ``size_confidence``, and
    then stays said until the next reach starts (if it does not, no size is said for that reach).
    Not before the end, nor long after: the size classifier is trained on, and calibrated for, the
    closing hand (mid-reach it is barely above chance, see docs/results/reach.md).
    """

    track_id: int
    stamp_ns: int
    phase: int
    phase_scores: np.ndarray
    onset: bool
    time_to_grasp_s: float
    grasp_size: str
    size_scores: np.ndarray
    reach_start_ns: int | None
    reach_end: bool = False

    @property
    def label(self) -> str:
        return PHASE_NAMES[self.phase]


class ReachDecider:
    """Turns one track's per-pose network outputs into decisions and onset events.

    Shared by the online recogniser and the offline evaluation, so that what is measured is what
    the node publishes.
    """

    def __init__(self, size_names: Sequence[str], settings: ReachSettings) -> None:
        self.size_names = tuple(size_names)
        self.settings = settings
        self.in_reach = False
        self.reach_start_ns: int | None = None
        self._above = 0
        self._idle_since_ns: int | None = None
        self._size = ""
        self._ended = False
        self._end_ns = 0

    def decide(self, stamp_ns: int, output: ReachOutput, track_id: int = -1) -> ReachResult:
        settings = self.settings
        phase = int(np.argmax(output.phase))
        onset = False
        self._above = self._above + 1 if output.phase[REACH] >= settings.onset_threshold else 0
        if not self.in_reach and self._above >= settings.onset_frames:
            self.in_reach, onset, self.reach_start_ns, self._size = True, True, stamp_ns, ""
            self._ended = False
        reach_end = self.in_reach and not self._ended and phase == GRASP_MOVE
        if reach_end:
            self._ended, self._end_ns = True, stamp_ns
        if phase == IDLE:
            if self._idle_since_ns is None:
                self._idle_since_ns = stamp_ns
            if self.in_reach and stamp_ns - self._idle_since_ns >= settings.rearm_s * 1e9:
                self.in_reach = False
        else:
            self._idle_since_ns = None
        said_window = self._ended and stamp_ns - self._end_ns <= settings.size_window_s * 1e9
        if said_window and not self._size and output.size.max() >= settings.size_confidence:
            self._size = self.size_names[int(np.argmax(output.size))]
        time_to_grasp = output.time_to_grasp_s if phase == REACH else float("nan")
        return ReachResult(
            track_id,
            stamp_ns,
            phase,
            output.phase,
            onset,
            time_to_grasp,
            self._size,
            output.size,
            self.reach_start_ns if self.in_reach else None,
            reach_end,
        )


@dataclass
class _Track:
    features: ReachFeatures
    decider: ReachDecider
    state: list[Tensor] | None = None
    last_stamp_ns: int = 0


class ReachRecognizer:
    """Feeds every filtered pose of every track through a :class:`ReachModel`, online.

    A track not seen for ``max_gap_s`` starts afresh (new features, empty history): after such
    a gap the person may have left, and the motion before it says nothing about the next reach.
    The size calibration (:class:`SizeCalibration`) is the recogniser's, not a track's: tracks
    come and go, the person at the cell stays; each detected reach end adds to it after that
    pose's size was scored. Call :meth:`reset` when a different person takes over.
    Cost per pose: see ``bench/bench_reach.py``; call ``torch.set_num_threads(1)`` in a process
    that runs only this (one step is far too small for intra-op threads to pay off). A new track
    starts from the model's initial state, computed once (a receptive field of steps) on the
    first track, not once per track.
    """

    def __init__(self, model: ReachModel, settings: ReachSettings | None = None) -> None:
        self.model = model.eval()
        self.settings = settings or ReachSettings()
        self._tracks: dict[int, _Track] = {}
        self.calibration = SizeCalibration()
        self._initial_state: list[Tensor] | None = None

    @property
    def size_names(self) -> tuple[str, ...]:
        return self.model.size_names

    def reset(self) -> None:
        """Forget every track and the person's size statistics."""
        self._tracks.clear()
        self.calibration = SizeCalibration()

    def _new_track_state(self) -> list[Tensor]:
        if self._initial_state is None:
            self._initial_state = self.model.initial_state()
        return self._initial_state

    def push(self, frame: FrameHands) -> list[ReachResult]:
        """One filtered, tracked frame in; one decision per hand in it out."""
        max_gap_ns = self.settings.max_gap_s * 1e9
        results = []
        for hand in range(len(frame)):
            track_id = int(frame.track_ids[hand])
            track = self._tracks.get(track_id)
            if track is None or frame.stamp_ns - track.last_stamp_ns > max_gap_ns:
                track = self._tracks[track_id] = _Track(
                    ReachFeatures(), ReachDecider(self.size_names, self.settings)
                )
            track.last_stamp_ns = frame.stamp_ns
            features = frame_hand_features(frame, hand, track.features)
            size_features = track.features.size_features
            if track.state is None:
                track.state = self._new_track_state()
            output, track.state = self.model.step(features, track.state, size_features, self.calibration)
            result = track.decider.decide(frame.stamp_ns, output, track_id)
            if result.reach_end:
                self.calibration.add(size_features)
            results.append(result)
        stale = [
            key for key, track in self._tracks.items() if frame.stamp_ns - track.last_stamp_ns > max_gap_ns
        ]
        for key in stale:
            del self._tracks[key]
        return results
