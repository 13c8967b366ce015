"""Labelled windows from annotated pose sources, cut exactly as the live recogniser cuts them.

Raw sources go through :class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` in
online mode (the filters the live cell runs), then through the same
:class:`~hand_pose_refiner.activity.windows.WindowCutter` as
:class:`~hand_pose_refiner.activity.recognizer.ActivityRecognizer`. A window takes the label of
the annotated span of its hand that covers most of it, if that covers at least ``min_overlap``
of the window's time; other windows (transitions, unlabelled time) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hand_pose_refiner.activity.features import IN_CHANNELS
from hand_pose_refiner.activity.labels import (
    ActivitySegment,
    load_annotations,
    load_pose_frames,
    resolve_source,
)
from hand_pose_refiner.activity.windows import Window, WindowCutter
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands

MIN_OVERLAP = 0.75


@dataclass
class WindowSet:
    """Labelled windows: features ``(N, C, T, 21)``, label indices ``(N,)``, and their origin."""

    features: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    sources: list[str] = field(default_factory=list)
    stats: RejectionStats = field(default_factory=lambda: RejectionStats("activity dataset", None))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return dict(zip(self.class_names, counts.tolist(), strict=True))

    @classmethod
    def empty(cls, class_names: Sequence[str], window_frames: int, channels: int) -> WindowSet:
        return cls(np.zeros((0, channels, window_frames, 21), np.float32), np.zeros(0, np.int64),
                   tuple(class_names))

    @staticmethod
    def concatenate(sets: Sequence[WindowSet]) -> WindowSet:
        if not sets:
            raise ValueError("no window sets to concatenate")
        stats = RejectionStats("activity dataset", None)
        for item in sets:
            stats.merge(item.stats)
        return WindowSet(np.concatenate([s.features for s in sets]), np.concatenate([s.labels for s in sets]),
                         sets[0].class_names, [name for s in sets for name in s.sources], stats)


def filter_frames(frames: Sequence[FrameHands], config: Config) -> list[FrameHands]:
    """Raw frames through the live filter chain (online mode)."""
    return PoseFilterPipeline(config, FilterMode.ONLINE).process(frames)


def cut_windows(frames: Sequence[FrameHands], config: Config, stride_frames: int,
                stats: RejectionStats | None = None) -> list[Window]:
    """Every window of filtered, tracked frames, ``stride_frames`` apart per track."""
    activity = config.activity
    cutter = WindowCutter(activity.window_frames, stride_frames, activity.max_gap_s,
                          activity.min_valid_fraction, stats)
    windows: list[Window] = []
    for frame in frames:
        windows.extend(cutter.push(frame))
    return windows


def window_label(window: Window, segments: Sequence[ActivitySegment], origin_ns: int,
                 min_overlap: float = MIN_OVERLAP) -> str | None:
    """The label of the matching segment covering most of the window, or None."""
    start = (window.start_ns - origin_ns) * 1e-9
    end = (window.end_ns - origin_ns) * 1e-9
    span = max(end - start, 1e-9)
    best, best_overlap = None, 0.0
    for segment in segments:
        if not segment.matches(window.track_id, window.handedness):
            continue
        overlap = (min(end, segment.end_s) - max(start, segment.start_s)) / span
        if overlap > best_overlap:
            best, best_overlap = segment.label, overlap
    return best if best_overlap >= min_overlap else None


def labelled_windows(frames: Sequence[FrameHands], segments: Sequence[ActivitySegment], config: Config,
                     stride_frames: int, run_filters: bool = True, source: str = "") -> WindowSet:
    """Labelled windows of one source's frames (raw when ``run_filters``, else already tracked)."""
    class_names = config.activity.class_names
    stats = RejectionStats("activity dataset", None)
    if not frames:
        return WindowSet.empty(class_names, config.activity.window_frames, IN_CHANNELS)
    origin_ns = min(frame.stamp_ns for frame in frames)
    filtered = filter_frames(frames, config) if run_filters else list(frames)
    windows = cut_windows(filtered, config, stride_frames, stats)
    index = {name: i for i, name in enumerate(class_names)}
    kept, labels = [], []
    for window in windows:
        label = window_label(window, segments, origin_ns)
        if label is None:
            stats.reject("unlabelled_window")
            continue
        kept.append(window.features)
        labels.append(index[label])
    if not kept:
        return WindowSet(WindowSet.empty(class_names, config.activity.window_frames, IN_CHANNELS).features,
                         np.zeros(0, np.int64), class_names, [], stats)
    return WindowSet(np.stack(kept), np.asarray(labels, np.int64), class_names, [source] * len(kept), stats)


def load_window_set(annotation_files: Sequence[str | Path], config: Config, stride_frames: int | None = None,
                    topic: str = "/hand_poses", run_filters: bool = True) -> WindowSet:
    """Labelled windows of every source named in the annotation files."""
    class_names = config.activity.class_names
    sets = []
    for annotation_file in annotation_files:
        segments = load_annotations(annotation_file, class_names)
        by_source: dict[str, list[ActivitySegment]] = {}
        for segment in segments:
            by_source.setdefault(segment.source, []).append(segment)
        for source, source_segments in by_source.items():
            frames = load_pose_frames(resolve_source(annotation_file, source), topic)
            sets.append(labelled_windows(frames, source_segments, config,
                                         stride_frames or config.activity.stride_frames, run_filters, source))
    if not sets:
        return WindowSet.empty(class_names, config.activity.window_frames, IN_CHANNELS)
    return WindowSet.concatenate(sets)
