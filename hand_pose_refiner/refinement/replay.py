"""Replay recordings through the detector, the pose model and the live filter chain, offline.

For each input: decode its frames (once, cached), run detector -> pose estimator (cached per
input and model), then :class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` in
offline mode, the same classes and configuration the live nodes run (a folder of stills first
goes through :mod:`~hand_pose_refiner.filters.recurring`, which needs the whole folder at once).
The output folder holds

* ``images/``: every frame as JPEG (the exact pixels the models saw),
* ``annotations.json``: a COCO keypoint dataset of the filtered hands (visibility from the
  filters' keypoint states),
* ``predictions.jsonl``: one line per frame with the raw and the filtered hands,
* ``stats.json``: the filters' totals and rejections per rule, per input and merged,
* ``summary.json``: counts, rates and speeds, the frames skipped while reading (by reason), and
  the inputs that could not be read,
* ``poses_bag/`` (optional): an MCAP rosbag2 with the images and the filtered HandPoseArray.

With ``options.cluster`` the shards run as Ray tasks (:func:`replay_on_ray`; the cluster itself
is :mod:`~hand_pose_refiner.refinement.distributed`), and the dataset is the same.

The folder is built under ``<out>.partial`` and renamed when complete. A frame that cannot be
decoded is skipped and counted; an input that cannot be read at all, or that meets an
unexpected error, is reported by name and left out; the others are still processed and written.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import torch

from hand_pose_refiner.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit_dir,
    fresh_partial_dir,
)
from hand_pose_refiner.coco import build_coco
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.recurring import drop_recurring_objects
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.cache import (
    FrameStore,
    PredictionCache,
    StoredFrame,
    model_key,
    run_models,
)
from hand_pose_refiner.refinement.distributed import ClusterOptions, connect, require_ray, task_failure
from hand_pose_refiner.refinement.inputs import InputSpec, ReadReport, count_frames
from hand_pose_refiner.refinement.records import hands_to_json
from hand_pose_refiner.skeleton import OBSERVED

LOGGER = logging.getLogger("hand_pose_refiner.replay")
# 64 frames: 2 s at 30 frames/s, well beyond the reach of the default filters at a cut
# (tracking.max_missed_s 0.5 s, temporal_filter.max_gap_s 0.25 s, tracking.min_hits 2 frames).
DEFAULT_OVERLAP_FRAMES = 64
# What a distributed replay cuts long recordings into: 1 minute at 30 frames/s, so the overlap
# costs 7% more filtering and decoding, and a shard's frames fit a worker's memory.
DEFAULT_SEGMENT_FRAMES = 1800
ANNOTATIONS = "annotations.json"
PREDICTIONS = "predictions.jsonl"


@dataclass(frozen=True)
class ReplayOptions:
    """How to run a replay (not what: that is the config and the models)."""

    cache_dir: Path | None = None  # None: a temporary cache, gone after the run
    write_bag: bool = False
    bag_overlay: bool = False  # the bag also holds the hands drawn on each image (overlay_bag.py)
    batch_size: int = 8
    progress: bool = True
    overwrite: bool = False
    # Cut recordings longer than this many frames into segments (None: never), each read with
    # overlap_frames more on either side; see :class:`Shard`.
    segment_frames: int | None = None
    overlap_frames: int = DEFAULT_OVERLAP_FRAMES
    cluster: ClusterOptions | None = None  # run the shards on a Ray cluster (replay_on_ray)
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


@dataclass(frozen=True)
class Shard:
    """One unit of replay work: a whole recording, or one time segment of a long one.

    A segment outputs the frames ``owned`` (``start <= index < stop``, numbered as in the whole
    recording; ``stop`` None: to the end) but decodes and filters ``context``: the owned frames
    plus ``overlap`` frames on each side, so that the tracker and the offline temporal filter
    (gap filling, track confirmation, the speed check) see at the cut what one pass would see.
    Shards are independent: any process can run any shard, in any order.
    """

    number: int  # the recording's position among the inputs
    spec: InputSpec  # the whole recording (no window)
    prefix: str  # image file names: <prefix>_<frame:06d>.jpg
    segment: int = 0
    segments: int = 1
    owned: tuple[int, int | None] = (0, None)
    context: tuple[int, int | None] = (0, None)

    @property
    def name(self) -> str:
        """The recording, and the segment when it is cut (for reports and errors)."""
        if self.segments == 1:
            return str(self.spec.path)
        stop = "end" if self.owned[1] is None else self.owned[1]
        return f"{self.spec.path} [segment {self.segment + 1}/{self.segments}: frames {self.owned[0]}-{stop}]"

    def read_spec(self) -> InputSpec:
        return self.spec if self.segments == 1 else replace(self.spec, window=self.context)

    def owns(self, index: int) -> bool:
        return index >= self.owned[0] and (self.owned[1] is None or index < self.owned[1])


@dataclass
class FrameRecord:
    """One output frame of a shard: raw and filtered hands, and its JPEG (a file or the bytes)."""

    index: int
    stamp_ns: int
    frame_id: str
    width: int
    height: int
    raw: FrameHands
    kept: FrameHands
    image: Path | bytes | None


@dataclass
class ShardResult:
    """What one shard gave: its owned frames, the filtered frames of its leading overlap (to
    join track ids across the cut), the filters' counts, timings; or why it failed."""

    shard: Shard
    kind: str = ""
    frames: list[FrameRecord] = field(default_factory=list)
    lead: list[FrameHands] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    predictions_cached: bool = False
    inference_seconds: float = 0.0
    filter_seconds: float = 0.0
    skipped_frames: dict[str, int] = field(default_factory=dict)
    skip_examples: dict[str, str] = field(default_factory=dict)
    damage: str | None = None
    error: str | None = None
    traceback: str | None = None


def plan_shards(inputs: Sequence[InputSpec], segment_frames: int | None = None,
                overlap_frames: int = 0) -> list[Shard]:
    """The shards of a replay, in output order.

    Without ``segment_frames`` every recording is one shard. With it, a recording longer than
    that (by its frame count read without decoding: :func:`count_frames`) is cut into segments
    of ``segment_frames`` frames, each read with ``overlap_frames`` more on either side; the
    last segment runs to the end, so a frame count that is an estimate loses no frame. Stills
    (unrelated photographs) and recordings whose length is unknown are not cut.
    """
    shards = []
    for number, spec in enumerate(inputs):
        prefix = _safe(spec.path.stem)
        prefix = f"{number:02d}_{prefix}" if len(inputs) > 1 else prefix
        whole = Shard(number, spec.whole(), prefix)
        count = None
        if segment_frames is not None and not spec.stills:
            try:
                count = count_frames(spec)
            except InputError:
                count = None  # one shard; running it reports the input by name
        if count is None or segment_frames is None or count <= segment_frames:
            shards.append(whole)
            continue
        total = math.ceil(count / segment_frames)
        for segment in range(total):
            start = segment * segment_frames
            stop = None if segment == total - 1 else start + segment_frames
            context = (max(0, start - overlap_frames), None if stop is None else stop + overlap_frames)
            shards.append(replace(whole, segment=segment, segments=total, owned=(start, stop),
                                  context=context))
    return shards


def run_shard(shard: Shard, config: Config, detector: HandDetector, estimator: PoseEstimator,
              cache_root: Path, options: ReplayOptions, key: str | None = None) -> ShardResult:
    """Decode, run the models (or load their cached predictions) and filter one shard.

    The one per-recording pipeline of every replay, in one process or many. Never raises on
    a bad recording, nor on an unexpected error in it: the result carries the error, naming the
    shard (and the traceback of an unexpected one), so the other shards' output is still written.
    """
    result = ShardResult(shard)
    try:
        return _run_shard(result, config, detector, estimator, cache_root, options, key)
    except Exception as exc:  # per-input isolation: kept with its traceback, shown once all is written
        result.frames, result.lead = [], []
        result.error = f"{shard.name}: unexpected {type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
        return result


def _run_shard(result: ShardResult, config: Config, detector: HandDetector, estimator: PoseEstimator,
               cache_root: Path, options: ReplayOptions, key: str | None) -> ShardResult:
    shard = result.shard
    try:
        result.kind = shard.spec.kind
        key = key or model_key(detector, estimator)
        predictions = PredictionCache(cache_root)
        frames, raw = _from_whole_recording(shard, cache_root, predictions, key)
        if frames is None:
            spec = shard.read_spec()
            store = FrameStore(cache_root, spec)
            if not store.complete:
                progress = Progress(f"decode {spec.path.name}", None, options.progress)
                store.build(progress)
                progress.close()
            frames = store.frames()
            _note_skips(result, store.read_report())
            raw = predictions.load(store, key)
            if raw is None:
                progress = Progress(f"models {spec.path.name}", len(frames), options.progress)
                began = time.perf_counter()
                raw = list(run_models(detector, estimator, frames, options.batch_size, progress))
                result.inference_seconds = time.perf_counter() - began
                progress.close()
                predictions.save(store, key, raw)
            else:
                result.predictions_cached = True
        else:
            result.predictions_cached = True  # cut from the whole recording's cached predictions
            _note_skips(result, FrameStore(cache_root, shard.spec).read_report())
    except InputError as exc:
        result.error = str(exc) if shard.segments == 1 else f"{shard.name}: {exc}"
        return result
    began = time.perf_counter()
    pipeline = PoseFilterPipeline(config_for(shard.spec, config), FilterMode.OFFLINE)
    candidates, recurring = raw, None
    if shard.spec.stills and config.recurring_objects.enabled:
        recurring = RejectionStats("recurring_objects")
        try:
            candidates = drop_recurring_objects(raw, lambda index: frames[index].rgb(),
                                                config.recurring_objects, recurring)
        except InputError as exc:  # a cached frame that cannot be read back
            result.error = str(exc)
            return result
    filtered = {hands.stamp_ns: hands for hands in pipeline.process(candidates)}
    result.stats = pipeline.stats.as_dict()
    if recurring is not None:
        result.stats["recurring_objects"] = recurring.as_dict()
    for frame, hands in zip(frames, raw, strict=True):
        kept = filtered.get(frame.stamp_ns) or FrameHands.empty(frame.stamp_ns, frame.width,
                                                                 frame.height, frame.frame_id)
        if shard.owns(frame.index):
            result.frames.append(FrameRecord(frame.index, frame.stamp_ns, frame.frame_id, frame.width,
                                             frame.height, hands, kept, frame.path))
        elif frame.index < shard.owned[0]:
            result.lead.append(kept)
    result.filter_seconds = time.perf_counter() - began
    return result


def _from_whole_recording(shard: Shard, cache_root: Path, predictions: PredictionCache,
                          key: str) -> tuple[list[StoredFrame] | None, list[FrameHands] | None]:
    """A segment's frames and predictions cut from the whole recording's cache, if it has both.

    So a cut replay after a one-pass replay (or another cut) neither decodes nor runs the models
    again, and its filters see exactly the predictions one pass saw.
    """
    if shard.segments == 1:
        return None, None
    store = FrameStore(cache_root, shard.spec)
    if not store.complete:
        return None, None
    raw = predictions.load(store, key)
    if raw is None:
        return None, None
    start, stop = shard.context
    inside = [(frame, hands) for frame, hands in zip(store.frames(), raw, strict=True)
              if frame.index >= start and (stop is None or frame.index < stop)]
    return [frame for frame, _ in inside], [hands for _, hands in inside]


def _note_skips(result: ShardResult, report: ReadReport) -> None:
    """The skipped frames a shard owns, and the damage its reading met, into its result."""
    result.skipped_frames = report.counts(result.shard.owns)
    result.skip_examples = {reason: text for reason, text in report.examples.items()
                            if reason in result.skipped_frames}
    result.damage = report.damage


def place_images(result: ShardResult, images: Path) -> list[Path]:
    """Put a shard's frames into the dataset's image folder (link a cached file, or write the
    bytes a remote worker sent) and drop them from memory; returns the files written."""
    written = []
    for record in result.frames:
        if record.image is None:
            continue
        target = images / f"{result.shard.prefix}_{record.index:06d}.jpg"
        if isinstance(record.image, bytes):
            atomic_write_bytes(target, record.image)
        else:
            _link(record.image, target)
        record.image = None
        written.append(target)
    return written


def _same_hand(a: FrameHands, i: int, b: FrameHands, j: int) -> bool:
    return bool(np.allclose(a.keypoints[i], b.keypoints[j], atol=0.5, equal_nan=True))


def renumber_tracks(results: Sequence[ShardResult]) -> None:
    """Track ids of one recording's shards (in order), joined across cuts and renumbered, in place.

    A track that crosses a cut is recognised in the overlap (the same filtered hand in the same
    frame on both sides) and keeps the id it had before the cut. Ids are numbered 0, 1, 2, ... in
    order of first appearance in the output (frame order, then order within a frame), so one
    pass and any cut of the same recording give the same ids. Within a frame, hands bridged
    over a missed detection (no observed keypoint) follow the detected ones in id order.
    """
    previous: dict[int, FrameHands] = {}  # stamp -> the previous shard's output, final ids
    next_id = 0
    for result in results:
        votes: dict[int, Counter[int]] = {}
        for hands in result.lead:
            before = previous.get(hands.stamp_ns)
            if before is None:
                continue
            for i, track_id in enumerate(hands.track_ids.tolist()):
                for j, final in enumerate(before.track_ids.tolist()):
                    if _same_hand(hands, i, before, j):
                        votes.setdefault(track_id, Counter())[final] += 1
                        break
        local: dict[int, int] = {}
        for track_id in sorted(votes):
            final = max(sorted(votes[track_id]), key=votes[track_id].__getitem__)
            if final not in local.values():
                local[track_id] = final
        previous = {}
        for record in result.frames:
            ids = record.kept.track_ids.copy()
            for i, track_id in enumerate(record.kept.track_ids.tolist()):
                if track_id not in local:
                    local[track_id] = next_id
                    next_id += 1
                ids[i] = local[track_id]
            kept = record.kept.derive(track_ids=ids)
            # Hands the filter bridged over a missed detection follow the detected ones; the
            # filter lists them in the order their tracks were born, which depends on how much
            # of the past a shard saw, so they are put in id order instead.
            record.kept = _bridged_last(kept)
            previous[record.stamp_ns] = record.kept


def _bridged_last(hands: FrameHands) -> FrameHands:
    bridged = ~(hands.keypoint_states == OBSERVED).any(axis=1)
    keys = [(bool(bridged[i]), int(hands.track_ids[i]) if bridged[i] else i) for i in range(len(hands))]
    order = sorted(range(len(hands)), key=keys.__getitem__)
    return hands.select(np.array(order, np.intp)) if order != sorted(order) else hands


class Replayer:
    """Runs one replay in this process; see the module docstring. Reusable with the same models."""

    def __init__(self, config: Config, detector: HandDetector, estimator: PoseEstimator,
                 options: ReplayOptions | None = None) -> None:
        self.config = config
        self.detector, self.estimator = detector, estimator
        self.options = options or ReplayOptions()

    def run(self, inputs: Sequence[InputSpec], out: Path) -> ReplaySummary:
        out = Path(out)
        check_output(out, self.options)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_cache_") as temporary:
            cache_root = Path(self.options.cache_dir) if self.options.cache_dir else Path(temporary)
            key = model_key(self.detector, self.estimator)
            shards = plan_shards(inputs, self.options.segment_frames, self.options.overlap_frames)
            assembly = Assembly(out, inputs, self.options)
            try:
                for shard in shards:
                    assembly.add(run_shard(shard, self.config, self.detector, self.estimator, cache_root,
                                           self.options, key))
                return assembly.finish(started)
            except BaseException:
                assembly.abandon()
                raise


def check_output(out: Path, options: ReplayOptions) -> None:
    if out.exists() and not options.overwrite:
        raise FileExistsError(f"{out} exists already; choose a new output folder (or --overwrite)")


class Assembly:
    """Builds the output folder from shard results, whichever process ran them, in any order.

    Images are placed as each result arrives (so a driver never holds a whole dataset of JPEG
    bytes); hands are kept until :meth:`finish` orders the shards, joins the track ids of cut
    recordings and writes annotations, predictions, statistics and the summary. A recording with
    a failed shard is reported by name and left out entirely, as a single-process replay leaves
    out a recording it cannot read. Everything is written under ``<out>.partial``, renamed to
    ``out`` by :meth:`finish`; :meth:`abandon` removes it, so no incomplete folder is ever left
    where a complete one is expected.
    """

    def __init__(self, out: Path, inputs: Sequence[InputSpec], options: ReplayOptions) -> None:
        self.out, self.inputs, self.options = Path(out), list(inputs), options
        self.partial = fresh_partial_dir(self.out)
        (self.partial / "images").mkdir()
        self.results: dict[tuple[int, int], ShardResult] = {}
        self.files: dict[int, list[Path]] = {}

    def add(self, result: ShardResult) -> None:
        shard = result.shard
        if (shard.number, shard.segment) in self.results:
            raise RuntimeError(f"{shard.name}: result delivered twice")
        self.results[shard.number, shard.segment] = result
        if result.error is None:
            self.files.setdefault(shard.number, []).extend(place_images(result, self.partial / "images"))

    def abandon(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def finish(self, started: float) -> ReplaySummary:
        collected = _Collected()
        results, stats = [], {}
        for number, spec in enumerate(self.inputs):
            shards = [r for (n, _), r in sorted(self.results.items()) if n == number]
            result = InputResult(str(spec.path))
            _note_reading(result, shards)
            errors = [r.error for r in shards if r.error is not None]
            if not shards:
                errors = [f"{spec.path}: no result"]
            if errors:
                result.error = "; ".join(errors)
                result.traceback = "\n".join(r.traceback for r in shards if r.traceback) or None
                result.kind = next((r.kind for r in shards if r.kind), "")
                LOGGER.error("input refused, the other inputs go on: %s", result.error)
                for file in self.files.pop(number, []):
                    file.unlink(missing_ok=True)
            else:
                renumber_tracks(shards)
                result.kind = shards[0].kind
                result.predictions_cached = all(r.predictions_cached for r in shards)
                result.inference_seconds = sum(r.inference_seconds for r in shards)
                result.filter_seconds = sum(r.filter_seconds for r in shards)
                result.stats = merged_stats({str(i): r.stats for i, r in enumerate(shards)})
                stats[str(spec.path)] = result.stats
                for shard_result in shards:
                    for record in shard_result.frames:
                        _collect(record, shard_result.shard, result, collected, self.options.write_bag,
                                 self.partial)
            results.append(result)
        summary = ReplaySummary(self.out, results, stats, 0.0)
        if not summary.succeeded and not self.options.write_when_empty:
            self.abandon()  # nothing to write: no empty folder, and an old one stays as it was
            summary.written = False
            summary.seconds = time.perf_counter() - started
            return summary
        _write(self.partial, summary, collected, self.options.write_bag, multi=len(self.inputs) > 1,
               overlay=self.options.bag_overlay)
        summary.seconds = time.perf_counter() - started
        atomic_write_json(self.partial / "summary.json", summary.as_dict())
        commit_dir(self.out, replace=self.options.overwrite)
        return summary


def _note_reading(result: InputResult, shards: Sequence[ShardResult]) -> None:
    """An input's skipped frames (by reason) and damage from its shards, logged once per reason."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for shard_result in shards:
        counts.update(shard_result.skipped_frames)
        for reason, text in shard_result.skip_examples.items():
            examples.setdefault(reason, text)
    result.skipped_frames = dict(sorted(counts.items()))
    for reason, count in result.skipped_frames.items():
        LOGGER.warning("%s: %d frame%s skipped: %s (first: %s)", result.path, count, "s" * (count != 1),
                       reason, examples.get(reason, "?"))
    damage = sorted({r.damage for r in shards if r.damage})
    result.damage = "; ".join(damage) or None
    if result.damage:
        LOGGER.warning("%s: %s", result.path, result.damage)


@dataclass
class _Collected:
    coco: list[tuple[str, FrameHands]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    bag_frames: list[tuple[int, Path, FrameHands]] = field(default_factory=list)


def _collect(record: FrameRecord, shard: Shard, result: InputResult, collected: _Collected, write_bag: bool,
             partial: Path) -> None:
    file_name = f"{shard.prefix}_{record.index:06d}.jpg"
    raw, kept = record.raw, record.kept
    collected.coco.append((f"images/{file_name}", kept))
    collected.lines.append(_json_line(shard.spec, record, file_name, raw, kept))
    if write_bag:
        collected.bag_frames.append((shard.number, partial / "images" / file_name, kept))
    result.frames += 1
    result.raw_hands += len(raw)
    result.accepted_hands += len(kept)
    result.frames_with_raw_hands += len(raw) > 0
    result.frames_with_hands += len(kept) > 0
    observed = kept.keypoint_states == OBSERVED
    result.keypoint_confidence_sum += float(kept.keypoint_scores[observed].sum())
    result.keypoint_confidence_count += int(observed.sum())


def _write(partial: Path, summary: ReplaySummary, collected: _Collected, write_bag: bool,
           multi: bool, overlay: bool = False) -> None:
    atomic_write_json(partial / ANNOTATIONS, build_coco(collected.coco), indent=None)
    atomic_write_text(partial / PREDICTIONS, "".join(collected.lines))
    atomic_write_json(partial / "stats.json", {"per_input": summary.stats,
                                               "merged": merged_stats(summary.stats)})
    if write_bag and collected.bag_frames:
        write_bag_file(partial / "poses_bag", collected.bag_frames, multi, overlay)


def _json_line(spec: InputSpec, frame: FrameRecord, file_name: str, raw: FrameHands, kept: FrameHands) -> str:
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


def write_bag_file(path: Path, frames: list[tuple[int, Path, FrameHands]], multi: bool,
                   overlay: bool = False) -> None:
    """Images (CompressedImage, JPEG) and filtered HandPoseArray, and with ``overlay`` the hands
    drawn on the images (hand_overlay); a topic prefix per input if several."""
    from hand_pose_refiner.refinement.overlay_bag import write_overlay
    from hand_pose_refiner.ros.bags import BagWriter

    with BagWriter(path, "mcap") as writer:
        for number, image_path, hands in frames:
            prefix = f"/input{number:02d}" if multi else ""
            bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            writer.write_compressed_image(f"{prefix}/camera/image_raw/compressed", bgr, hands.stamp_ns,
                                          hands.frame_id)
            writer.write_hands(f"{prefix}/hand_poses", hands)
            if overlay:
                write_overlay(writer, prefix, bgr, hands)


def _move_models(detector: HandDetector, estimator: PoseEstimator, device: str) -> None:
    """Put both networks on ``device`` (a task that was given a GPU)."""
    target = torch.device(device)
    for model in (detector, estimator):
        for name in ("net", "anchors"):
            value = getattr(model, name, None)
            if value is not None:
                setattr(model, name, value.to(target))
        if hasattr(model, "device"):
            model.device = target


def replay_shard(shard: Shard, config: Config, models: tuple[HandDetector, PoseEstimator], key: str,
                 options: ReplayOptions, threads: int) -> ShardResult:
    """One shard in a Ray worker: the single-process pipeline, with the frames returned as bytes.

    The cache is ``options.cache_dir`` where given (it should then be node-local or shared),
    else a temporary folder of the task.
    """
    import ray  # the cluster extra: imported only where a replay runs on Ray

    torch.set_num_threads(max(1, threads))
    detector, estimator = models
    if ray.get_gpu_ids():
        _move_models(detector, estimator, "cuda")
    with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_shard_") as temporary:
        cache_root = Path(options.cache_dir) if options.cache_dir else Path(temporary)
        result = run_shard(shard, config, detector, estimator, cache_root,
                           replace(options, progress=False), key)
        for record in result.frames:
            if isinstance(record.image, Path):
                record.image = record.image.read_bytes()
    return result


def replay_on_ray(inputs: Sequence[InputSpec], out: Path, config: Config, detector: HandDetector,
                  estimator: PoseEstimator, options: ReplayOptions) -> ReplaySummary:
    """Replay ``inputs`` into ``out`` on the Ray cluster of ``options.cluster``.

    The dataset is the one a single-process replay with the same shards writes (see
    :func:`replay`). Recordings longer than ``options.segment_frames`` (default
    :data:`DEFAULT_SEGMENT_FRAMES`) are cut.
    """
    cluster = options.cluster
    assert cluster is not None
    out = Path(out)
    check_output(out, options)
    started = time.perf_counter()
    owns_cluster = connect(cluster)
    ray = require_ray()
    try:
        segment_frames = options.segment_frames
        shards = plan_shards(inputs, DEFAULT_SEGMENT_FRAMES if segment_frames is None else segment_frames,
                             options.overlap_frames)
        gpus = cluster.gpus_per_task
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        task = ray.remote(replay_shard).options(
            num_cpus=cluster.cpus_per_task, num_gpus=gpus, max_retries=cluster.max_retries,
            retry_exceptions=False, name="replay_shard")
        models = ray.put((detector, estimator))
        key = model_key(detector, estimator)
        task_options = replace(options, cluster=None)
        threads = max(1, int(cluster.cpus_per_task))
        pending = {task.remote(shard, config, models, key, task_options, threads): shard for shard in shards}
        LOGGER.info("replay: %d shards on Ray (%s)", len(shards), ray.cluster_resources())
        assembly = Assembly(out, inputs, options)
        try:
            done_count = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    shard = pending.pop(ref)
                    assembly.add(_result(ray, ref, shard, cluster.max_retries))
                    done_count += 1
                    if options.progress:
                        sys.stderr.write(f"\rreplay on Ray: {done_count}/{len(shards)} shards   ")
                        sys.stderr.flush()
            if options.progress:
                sys.stderr.write("\n")
            return assembly.finish(started)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            assembly.abandon()
            raise
    finally:
        if owns_cluster:
            ray.shutdown()


def _result(ray: ModuleType, ref: Any, shard: Shard, retries: int) -> ShardResult:
    """A shard's result, or the failure of its last attempt as the shard's error."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        error = f"{shard.name}: {task_failure(ray, exc, retries)}"
        LOGGER.error("%s", error)
        return ShardResult(shard, error=error)


def replay(inputs: Sequence[InputSpec], out: Path, config: Config, detector: HandDetector,
           estimator: PoseEstimator, options: ReplayOptions | None = None) -> ReplaySummary:
    """Replay ``inputs`` into the folder ``out``; see the module docstring.

    In this process, or on a Ray cluster when ``options.cluster`` is set: the same shards, the
    same per-shard pipeline (:func:`run_shard`) and the same assembly either way.
    """
    options = options or ReplayOptions()
    if options.cluster is not None:
        return replay_on_ray(inputs, out, config, detector, estimator, options)
    return Replayer(config, detector, estimator, options).run(inputs, out)

