"""What a replay is asked (:class:`ReplaySettings`) and what it gave (:class:`InputResult`,
:class:`ReplaySummary`), with the rejection counts merged over stages and inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.refinement.distributed import ClusterSettings

# 64 frames: 2 s at 30 frames/s, well beyond the reach of the default filters at a cut
# (tracking.max_missed_s 0.5 s, temporal_filter.max_gap_s 0.25 s, tracking.min_hits 2 frames).
DEFAULT_OVERLAP_FRAMES = 64
# What a distributed replay cuts long recordings into: 1 minute at 30 frames/s, so the overlap
# costs 7% more filtering and decoding, and a shard's frames fit a worker's memory.
DEFAULT_SEGMENT_FRAMES = 1800


@dataclass(frozen=True)
class ReplaySettings:
    """How to run a replay (not what: that is the config and the models)."""

    cache_dir: Path | None = None  # None: a temporary cache, gone after the run
    write_bag: bool = False
    bag_overlay: bool = False  # the bag also holds the hands drawn on each image (overlay_bag.py)
    batch_size: int = 8
    progress: bool = True
    overwrite: bool = False
    # Cut recordings longer than this many frames into segments (None: never), each read with
    # overlap_frames more on either side; see :class:`~hand_pose_refiner.refinement.shards.Shard`.
    segment_frames: int | None = None
    overlap_frames: int = DEFAULT_OVERLAP_FRAMES
    cluster: ClusterSettings | None = None  # run the shards on a Ray cluster (replay_on_ray)
    write_when_empty: bool = True  # False: no output folder when no input gave a frame


@dataclass
class InputResult:
    """What one input gave (or why it gave nothing)."""

    path: str
    kind: str = ""
    frames: int = 0
    raw_hands: int = 0
    accepted_hands: int = 0
    frames_with_raw_hands: int = 0
    frames_with_hands: int = 0
    keypoint_confidence_sum: float = 0.0
    keypoint_confidence_count: int = 0
    predictions_cached: bool = False
    inference_seconds: float = 0.0
    filter_seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    skipped_frames: dict[str, int] = field(default_factory=dict)  # frames decoding skipped, by reason
    damage: str | None = None  # where the recording stopped being readable before its end
    error: str | None = None
    traceback: str | None = None  # of an unexpected error (a bug), for the command line to print

    @property
    def detection_rate(self) -> float:
        return self.frames_with_hands / self.frames if self.frames else float("nan")

    @property
    def mean_keypoint_confidence(self) -> float:
        count = self.keypoint_confidence_count
        return self.keypoint_confidence_sum / count if count else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detection_rate": self.detection_rate,
                "mean_keypoint_confidence": self.mean_keypoint_confidence}


@dataclass
class ReplaySummary:
    """The whole replay: per-input results, totals and the merged rejection counts."""

    out: Path
    inputs: list[InputResult]
    stats: dict[str, Any]
    seconds: float
    written: bool = True  # False: no input gave a frame and no folder was written

    @property
    def succeeded(self) -> list[InputResult]:
        return [r for r in self.inputs if r.error is None]

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.error is not None]

    def total(self, name: str) -> int:
        return int(sum(getattr(r, name) for r in self.succeeded))

    @property
    def skipped_frames(self) -> dict[str, int]:
        """Frames skipped while reading, by reason, over every input."""
        counts: Counter[str] = Counter()
        for result in self.inputs:
            counts.update(result.skipped_frames)
        return dict(sorted(counts.items()))

    @property
    def detection_rate(self) -> float:
        frames = self.total("frames")
        return self.total("frames_with_hands") / frames if frames else float("nan")

    @property
    def mean_keypoint_confidence(self) -> float:
        count = sum(r.keypoint_confidence_count for r in self.succeeded)
        return sum(r.keypoint_confidence_sum for r in self.succeeded) / count if count else float("nan")

    def as_dict(self) -> dict[str, Any]:
        frames = self.total("frames")
        return {
            "out": str(self.out), "frames": frames, "raw_hands": self.total("raw_hands"),
            "accepted_hands": self.total("accepted_hands"),
            "frames_with_raw_hands": self.total("frames_with_raw_hands"),
            "frames_with_hands": self.total("frames_with_hands"),
            "detection_rate": self.detection_rate,
            "raw_detection_rate": self.total("frames_with_raw_hands") / frames if frames else float("nan"),
            "mean_keypoint_confidence": self.mean_keypoint_confidence,
            "seconds": self.seconds, "frames_per_s": frames / self.seconds if self.seconds else float("nan"),
            "skipped_frames": self.skipped_frames,
            "inputs": [r.as_dict() for r in self.inputs],
            "failed_inputs": [{"path": r.path, "error": r.error} for r in self.failed],
            "rejections": merged_rejections(self.stats),
        }


def merged_rejections(stats: dict[str, Any]) -> dict[str, int]:
    """Rejections per rule over every stage and input: ``{"stage/rule": count}``."""
    merged: dict[str, int] = {}
    for stages in stats.values():
        for stage, counts in stages.items():
            for rule, count in counts.get("rejections", {}).items():
                key = f"{stage}/{rule}"
                merged[key] = merged.get(key, 0) + int(count)
    return dict(sorted(merged.items()))


def merged_stats(per_input: dict[str, Any]) -> dict[str, Any]:
    """The per-input PipelineStats dicts added up, stage by stage."""
    stages: dict[str, RejectionStats] = {}
    for stats in per_input.values():
        for stage, counts in stats.items():
            merged = stages.setdefault(stage, RejectionStats(stage, logger=None))
            merged.totals.update(counts.get("totals", {}))
            merged.rejections.update(counts.get("rejections", {}))
    return {stage: stats.as_dict() for stage, stats in stages.items()}
