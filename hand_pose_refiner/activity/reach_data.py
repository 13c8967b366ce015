"""Reach recordings prepared for training and evaluation: each passes through the live filter
chain (online mode, the node's config), then
:class:`~hand_pose_refiner.activity.reach_features.ReachFeatures`, exactly as live poses do; the
prepared feature streams are reused by every fit and fold.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.activity.reach_features import (
    NUM_FEATURES,
    NUM_SIZE_FEATURES,
    ReachFeatures,
    frame_hand_features,
)
from hand_pose_refiner.activity.rtg_dataset import RtgSequence
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode


@dataclass(frozen=True)
class PreparedSequence:
    """One recording after the filters: a feature row per filtered pose, and its labels.

    ``rows`` index the recording's frames (``sequence.time_s``) that produced a filtered pose;
    ``size_features`` are the grasp-size features of the same poses.
    """

    sequence: RtgSequence
    features: npt.NDArray[np.float32]
    rows: npt.NDArray[np.int64]
    filter_stats: dict[str, dict[str, dict[str, int]]]
    size_features: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, NUM_SIZE_FEATURES), np.float32)
    )

    @property
    def end_row(self) -> int:
        """The last pose at or before the labelled end of the reach (the first pose if none is)."""
        times = self.sequence.time_s[self.rows]
        return max(int(np.searchsorted(times, self.sequence.end_s, side="right")) - 1, 0)

    @property
    def phase(self) -> npt.NDArray[np.uint8]:
        return self.sequence.phase[self.rows]

    @property
    def time_to_grasp_s(self) -> npt.NDArray[np.float32]:
        return (self.sequence.end_s - self.sequence.time_s[self.rows]).astype(np.float32)


def prepare_sequence(sequence: RtgSequence, config: Config) -> PreparedSequence:
    """Run one recording's usable frames through the online filters and the feature code."""
    pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
    index_of_stamp: dict[int, int] = {}
    features: dict[int, ReachFeatures] = {}
    rows, vectors, sizes = [], [], []

    def take(frames: Sequence) -> None:
        for frame in frames:
            if len(frame) == 0:
                continue
            hand = int(np.argmax(frame.keypoint_scores.sum(axis=1)))
            track = features.setdefault(int(frame.track_ids[hand]), ReachFeatures())
            rows.append(index_of_stamp[frame.stamp_ns])
            vectors.append(frame_hand_features(frame, hand, track))
            sizes.append(track.size_features)

    for index, frame in sequence.frames():
        index_of_stamp[frame.stamp_ns] = index
        take(pipeline.push(frame))
    take(pipeline.flush())
    return PreparedSequence(
        sequence,
        np.array(vectors, np.float32).reshape(-1, NUM_FEATURES),
        np.array(rows, np.int64),
        pipeline.stats.as_dict(),
        np.array(sizes, np.float32).reshape(-1, NUM_SIZE_FEATURES),
    )


def prepare_sequences(
    sequences: Sequence[RtgSequence],
    config: Config,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> list[PreparedSequence]:
    """:func:`prepare_sequence` of every recording, in order (``jobs`` > 1: that many processes;
    each recording is filtered on its own, so the result does not depend on ``jobs``)."""
    if jobs > 1:
        with fork_pool(jobs) as pool:
            prepared = pool.starmap(prepare_sequence, [(s, config) for s in sequences], chunksize=8)
        if progress is not None:
            progress(len(prepared), len(sequences))
        return prepared
    prepared = []
    for number, sequence in enumerate(sequences, 1):
        prepared.append(prepare_sequence(sequence, config))
        if progress is not None:
            progress(number, len(sequences))
    return prepared


def fork_pool(jobs: int) -> multiprocessing.pool.Pool:
    """Worker processes forked from this one (the prepared recordings are inherited, not sent)."""
    return multiprocessing.get_context("fork").Pool(jobs)
