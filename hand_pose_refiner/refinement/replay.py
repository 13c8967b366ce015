"""Replay recordings through the detector, the pose model and the live filter chain, offline.

For each input: decode its frames (once, cached), run detector -> pose estimator (cached per
input and model), then :class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` in
offline mode, the same classes and configuration the live nodes run. The output folder holds

* ``images/``: every frame as JPEG (the exact pixels the models saw),
* ``annotations.json``: a COCO keypoint dataset of the filtered hands (visibility from the
  filters' keypoint states),
* ``predictions.jsonl``: one line per frame with the raw and the filtered hands,
* ``stats.json``: the filters' totals and rejections per rule, per input and merged,
* ``summary.json``: counts, rates and speeds, and the inputs that could not be read,
* ``poses_bag/`` (optional): an MCAP rosbag2 with the images and the filtered HandPoseArray.

The folder is built under ``<out>.partial`` and renamed when complete. An input that cannot be
read is reported by name and left out; the others are still processed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2

from hand_pose_refiner.atomic import (
    atomic_write_json,
    atomic_write_text,
    commit_dir,
    fresh_partial_dir,
)
from hand_pose_refiner.coco import build_coco
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.cache import FrameStore, PredictionCache, StoredFrame, model_key, run_models
from hand_pose_refiner.refinement.inputs import InputSpec
from hand_pose_refiner.refinement.records import hands_to_json
from hand_pose_refiner.skeleton import OBSERVED

LOGGER = logging.getLogger("hand_pose_refiner.replay")
ANNOTATIONS = "annotations.json"
PREDICTIONS = "predictions.jsonl"


@dataclass(frozen=True)
class ReplayOptions:
    """How to run a replay (not what: that is the config and the models)."""

    cache_dir: Path | None = None  # None: a temporary cache, gone after the run
    write_bag: bool = False
    batch_size: int = 8
    progress: bool = True
    overwrite: bool = False


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
    error: str | None = None

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

    @property
    def succeeded(self) -> list[InputResult]:
        return [r for r in self.inputs if r.error is None]

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.error is not None]

    def total(self, name: str) -> int:
        return int(sum(getattr(r, name) for r in self.succeeded))

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
            "inputs": [r.as_dict() for r in self.inputs],
            "failed_inputs": [{"path": r.path, "error": r.error} for r in self.failed],
            "rejections": merged_rejections(self.stats),
        }


class Progress:
    """A one-line progress display on stderr with frames per second (throttled)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.started = time.perf_counter()
        self._shown = 0.0
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.perf_counter()
        if self.enabled and now - self._shown > 0.25:
            self._shown = now
            self._write()

    def _write(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {self.count}{of} frames, {self.count / elapsed:.1f} frames/s   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._write()
            sys.stderr.write("\n")


def config_for(spec: InputSpec, config: Config) -> Config:
    """The config for one input: stills (unrelated photographs) are not filtered over time."""
    if not spec.stills:
        return config
    return replace(config, tracking=replace(config.tracking, min_hits=1),
                   temporal_filter=replace(config.temporal_filter, enabled=False))


def merged_rejections(stats: dict[str, Any]) -> dict[str, int]:
    """Rejections per rule over every stage and input: ``{"stage/rule": count}``."""
    merged: dict[str, int] = {}
    for stages in stats.values():
        for stage, counts in stages.items():
            for rule, count in counts.get("rejections", {}).items():
                key = f"{stage}/{rule}"
                merged[key] = merged.get(key, 0) + int(count)
    return dict(sorted(merged.items()))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "input"


def _link(source: Path, target: Path) -> None:
    """Hard link (instant, no copy) where the file system allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@dataclass
class _Collected:
    coco: list[tuple[str, FrameHands]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    bag_frames: list[tuple[int, Path, FrameHands]] = field(default_factory=list)


class Replayer:
    """Runs one replay; see the module docstring. Reusable across calls with the same models."""

    def __init__(self, config: Config, detector: HandDetector, estimator: PoseEstimator,
                 options: ReplayOptions | None = None) -> None:
        self.config = config
        self.detector, self.estimator = detector, estimator
        self.options = options or ReplayOptions()

    def run(self, inputs: Sequence[InputSpec], out: Path) -> ReplaySummary:
        out = Path(out)
        if out.exists() and not self.options.overwrite:
            raise FileExistsError(f"{out} exists already; choose a new output folder (or --overwrite)")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_cache_") as temporary:
            cache_root = Path(self.options.cache_dir) if self.options.cache_dir else Path(temporary)
            partial = fresh_partial_dir(out)
            (partial / "images").mkdir()
            key = model_key(self.detector, self.estimator)
            collected = _Collected()
            results, stats = [], {}
            for number, spec in enumerate(inputs):
                result = InputResult(str(spec.path))
                try:
                    result.kind = spec.kind
                    prefix = _safe(spec.path.stem)
                    prefix = f"{number:02d}_{prefix}" if len(inputs) > 1 else prefix
                    self._one(spec, prefix, number, cache_root, key, partial, result, collected)
                    stats[str(spec.path)] = result.stats
                except InputError as exc:
                    result.error = str(exc)
                    LOGGER.error("input refused, the other inputs go on: %s", exc)
                results.append(result)
            summary = ReplaySummary(out, results, stats, 0.0)
            self._write(partial, summary, collected, multi=len(inputs) > 1)
            summary.seconds = time.perf_counter() - started
            atomic_write_json(partial / "summary.json", summary.as_dict())
            commit_dir(out, replace=self.options.overwrite)
        return summary

    def _one(self, spec: InputSpec, prefix: str, number: int, cache_root: Path, key: str, partial: Path,
             result: InputResult, collected: _Collected) -> None:
        store = FrameStore(cache_root, spec)
        if not store.complete:
            progress = Progress(f"decode {spec.path.name}", None, self.options.progress)
            store.build(progress)
            progress.close()
        frames = store.frames()
        predictions = PredictionCache(cache_root)
        raw = predictions.load(store, key)
        result.predictions_cached = raw is not None
        if raw is None:
            progress = Progress(f"models {spec.path.name}", len(frames), self.options.progress)
            began = time.perf_counter()
            raw = list(run_models(self.detector, self.estimator, frames, self.options.batch_size, progress))
            result.inference_seconds = time.perf_counter() - began
            progress.close()
            predictions.save(store, key, raw)
        began = time.perf_counter()
        pipeline = PoseFilterPipeline(config_for(spec, self.config), FilterMode.OFFLINE)
        filtered = {hands.stamp_ns: hands for hands in pipeline.process(raw)}
        result.stats = pipeline.stats.as_dict()
        for frame, hands in zip(frames, raw, strict=True):
            kept = filtered.get(frame.stamp_ns) or FrameHands.empty(frame.stamp_ns, frame.width,
                                                                     frame.height, frame.frame_id)
            self._collect(frame, hands, kept, f"{prefix}_{frame.index:06d}.jpg", partial, number,
                          spec, result, collected)
        result.filter_seconds = time.perf_counter() - began

    def _collect(self, frame: StoredFrame, raw: FrameHands, kept: FrameHands, file_name: str, partial: Path,
                 number: int, spec: InputSpec, result: InputResult, collected: _Collected) -> None:
        target = partial / "images" / file_name
        _link(frame.path, target)
        collected.coco.append((f"images/{file_name}", kept))
        collected.lines.append(_json_line(spec, frame, file_name, raw, kept))
        if self.options.write_bag:
            collected.bag_frames.append((number, target, kept))
        result.frames += 1
        result.raw_hands += len(raw)
        result.accepted_hands += len(kept)
        result.frames_with_raw_hands += len(raw) > 0
        result.frames_with_hands += len(kept) > 0
        observed = kept.keypoint_states == OBSERVED
        result.keypoint_confidence_sum += float(kept.keypoint_scores[observed].sum())
        result.keypoint_confidence_count += int(observed.sum())

    def _write(self, partial: Path, summary: ReplaySummary, collected: _Collected, multi: bool) -> None:
        atomic_write_json(partial / ANNOTATIONS, build_coco(collected.coco), indent=None)
        atomic_write_text(partial / PREDICTIONS, "".join(collected.lines))
        atomic_write_json(partial / "stats.json", {"per_input": summary.stats,
                                                   "merged": merged_stats(summary.stats)})
        if self.options.write_bag and collected.bag_frames:
            write_bag(partial / "poses_bag", collected.bag_frames, multi)


def _json_line(spec: InputSpec, frame: StoredFrame, file_name: str, raw: FrameHands, kept: FrameHands) -> str:
    import json

    return json.dumps({"input": str(spec.path), "frame": frame.index, "file_name": f"images/{file_name}",
                       "stamp_ns": frame.stamp_ns, "width": frame.width, "height": frame.height,
                       "raw": hands_to_json(raw), "filtered": hands_to_json(kept)}) + "\n"


def merged_stats(per_input: dict[str, Any]) -> dict[str, Any]:
    """The per-input PipelineStats dicts added up, stage by stage."""
    stages: dict[str, RejectionStats] = {}
    for stats in per_input.values():
        for stage, counts in stats.items():
            merged = stages.setdefault(stage, RejectionStats(stage, logger=None))
            merged.totals.update(counts.get("totals", {}))
            merged.rejections.update(counts.get("rejections", {}))
    return {stage: stats.as_dict() for stage, stats in stages.items()}


def write_bag(path: Path, frames: list[tuple[int, Path, FrameHands]], multi: bool) -> None:
    """Images (CompressedImage, JPEG) and filtered HandPoseArray; a topic prefix per input if several."""
    from hand_pose_refiner.ros.bags import BagWriter

    with BagWriter(path, "mcap") as writer:
        for number, image_path, hands in frames:
            prefix = f"/input{number:02d}" if multi else ""
            bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            writer.write_compressed_image(f"{prefix}/camera/image_raw/compressed", bgr, hands.stamp_ns,
                                          hands.frame_id)
            writer.write_hands(f"{prefix}/hand_poses", hands)


def replay(inputs: Sequence[InputSpec], out: Path, config: Config, detector: HandDetector,
           estimator: PoseEstimator, options: ReplayOptions | None = None) -> ReplaySummary:
    """Replay ``inputs`` into the folder ``out``; see the module docstring."""
    return Replayer(config, detector, estimator, options).run(inputs, out)

