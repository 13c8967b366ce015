"""Putting a replay's shard results together into its output folder, whichever process ran
them and in whatever order: images placed as results arrive, track ids joined across the cuts
of a recording and renumbered, and the files written (:mod:`.export`) once all are in.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hand_pose_refiner.atomic import atomic_write_bytes, atomic_write_json, commit_dir, fresh_partial_dir
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.refinement.export import Collected, collect, write_outputs
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay_types import InputResult, ReplaySettings, ReplaySummary, merged_stats
from hand_pose_refiner.refinement.shards import ShardResult
from hand_pose_refiner.skeleton import OBSERVED

LOGGER = logging.getLogger("hand_pose_refiner.replay")


def check_output(out: Path, options: ReplaySettings) -> None:
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

    def __init__(self, out: Path, inputs: Sequence[InputSpec], options: ReplaySettings) -> None:
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
        collected = Collected()
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
                        collect(record, shard_result.shard, result, collected, self.options.write_bag,
                                self.partial)
            results.append(result)
        summary = ReplaySummary(self.out, results, stats, 0.0)
        if not summary.succeeded and not self.options.write_when_empty:
            self.abandon()  # nothing to write: no empty folder, and an old one stays as it was
            summary.written = False
            summary.seconds = time.perf_counter() - started
            return summary
        write_outputs(self.partial, summary, collected, self.options.write_bag, multi=len(self.inputs) > 1,
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


def _link(source: Path, target: Path) -> None:
    """Hard link (instant, no copy) where the file system allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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
