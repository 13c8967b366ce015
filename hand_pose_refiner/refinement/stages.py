"""One shard through the replay's stages: read its frames (:mod:`.shards`), run the models
(:mod:`.inference`, the prediction cache around it), filter (:mod:`.filtering`).

The one per-recording pipeline of every replay, in one process (:mod:`.replay`) or as a Ray task
(:mod:`.ray_replay`).
"""

from __future__ import annotations

import traceback
from pathlib import Path

from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.cache import FrameStore, PredictionCache, model_key
from hand_pose_refiner.refinement.filtering import filter_shard
from hand_pose_refiner.refinement.inference import predict
from hand_pose_refiner.refinement.replay_types import ReplaySettings
from hand_pose_refiner.refinement.shards import (
    Shard,
    ShardResult,
    cut_from_whole_recording,
    decode_shard,
    note_skips,
)


def run_shard(shard: Shard, config: Config, detector: HandDetector, estimator: PoseEstimator,
              cache_root: Path, options: ReplaySettings, key: str | None = None) -> ShardResult:
    """Decode, run the models (or load their cached predictions) and filter one shard.

    Never raises on a bad recording, nor on an unexpected error in it: the result carries the
    error, naming the shard (and the traceback of an unexpected one), so the other shards'
    output is still written.
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
               cache_root: Path, options: ReplaySettings, key: str | None) -> ShardResult:
    shard = result.shard
    try:
        result.kind = shard.spec.kind
        key = key or model_key(detector, estimator)
        cache = PredictionCache(cache_root)
        cut = cut_from_whole_recording(shard, cache_root, cache, key)
        if cut is None:
            store = decode_shard(shard, cache_root, options.progress)
            frames = store.frames()
            note_skips(result, store.read_report())
            predictions = predict(store, frames, detector, estimator, cache, key, options.batch_size,
                                  options.progress)
            raw = predictions.hands
            result.predictions_cached = predictions.cached
            result.inference_seconds = predictions.seconds
        else:
            frames, raw = cut
            result.predictions_cached = True  # cut from the whole recording's cached predictions
            note_skips(result, FrameStore(cache_root, shard.spec).read_report())
    except InputError as exc:
        result.error = str(exc) if shard.segments == 1 else f"{shard.name}: {exc}"
        return result
    filter_shard(result, config, frames, raw)
    return result
