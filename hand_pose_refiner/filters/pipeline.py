"""Spatial filter -> tracker -> temporal filter, the one chain every caller runs.

The live nodes run it online (bounded delay), the replay and refinement tools offline (look-
ahead), on the same :class:`~hand_pose_refiner.config.Config`, so a dataset is built by exactly
the filters the cell runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.spatial import SpatialFilter, SpatialResult
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter, process_stream
from hand_pose_refiner.filters.tracking import HandTracker
from hand_pose_refiner.hands import FrameHands


@dataclass(frozen=True)
class PipelineStats:
    """The rejection counts of every stage."""

    spatial: RejectionStats
    tracking: RejectionStats
    temporal: RejectionStats

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {"spatial_filter": self.spatial.as_dict(), "tracking": self.tracking.as_dict(),
                "temporal_filter": self.temporal.as_dict()}


class PoseFilterPipeline:
    """Filters a stream of raw frames; ``push`` returns the frames the temporal filter releases."""

    def __init__(self, config: Config, mode: FilterMode) -> None:
        self.spatial = SpatialFilter(config.spatial_filter)
        self.tracker = HandTracker(config.tracking)
        self.temporal = TemporalFilter(config.temporal_filter, config.tracking, mode)
        self.stats = PipelineStats(self.spatial.stats, self.tracker.stats, self.temporal.stats)
        self._last_stamp_ns: int | None = None
        self.last_spatial: SpatialResult | None = None

    def push(self, raw: FrameHands) -> list[FrameHands]:
        """Filter one frame. Frames not newer than the previous one are counted and dropped."""
        if self._last_stamp_ns is not None and raw.stamp_ns <= self._last_stamp_ns:
            self.temporal.stats.reject("non_monotonic_stamp", 1, f"stamp {raw.stamp_ns} ns after "
                                                                 f"{self._last_stamp_ns} ns")
            return []
        self._last_stamp_ns = raw.stamp_ns
        self.last_spatial = self.spatial(raw)
        return self.temporal.push(self.tracker.update(self.last_spatial.accepted))

    def flush(self) -> list[FrameHands]:
        """Release the frames the temporal filter still holds."""
        return self.temporal.flush()

    def process(self, frames: Iterable[FrameHands]) -> list[FrameHands]:
        """The whole sequence, filtered (push each frame, then flush)."""
        return process_stream(self, frames)
