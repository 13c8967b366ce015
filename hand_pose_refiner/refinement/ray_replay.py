"""A replay on a Ray cluster: each shard one Ray task (:func:`replay_shard`), the driver
(:func:`replay_on_ray`) placing each result as it arrives.

The task runs the same per-shard pipeline as a single-process replay
(:func:`~hand_pose_refiner.refinement.stages.run_shard`) and returns its frames as JPEG bytes, so
that no file system needs to be shared for the output; the driver assembles the dataset exactly
as one process does. The cluster itself (options, joining, failures in words) is
:mod:`~hand_pose_refiner.refinement.distributed`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from hand_pose_refiner.config import Config
from hand_pose_refiner.models.base import HandDetector, OnDevice, PoseEstimator
from hand_pose_refiner.refinement.assembly import Assembly, check_output
from hand_pose_refiner.refinement.cache import model_key
from hand_pose_refiner.refinement.distributed import connect, require_ray, task_failure
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay_types import DEFAULT_SEGMENT_FRAMES, ReplaySettings, ReplaySummary
from hand_pose_refiner.refinement.shards import Shard, ShardResult, plan_shards
from hand_pose_refiner.refinement.stages import run_shard

LOGGER = logging.getLogger("hand_pose_refiner.replay")


def _move_models(detector: HandDetector, estimator: PoseEstimator, device: str) -> None:
    """Put both networks on ``device`` (a task that was given a GPU)."""
    for model in (detector, estimator):
        if isinstance(model, OnDevice):
            model.to_device(torch.device(device))


def replay_shard(shard: Shard, config: Config, models: tuple[HandDetector, PoseEstimator], key: str,
                 options: ReplaySettings, threads: int) -> ShardResult:
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
                  estimator: PoseEstimator, options: ReplaySettings) -> ReplaySummary:
    """Replay ``inputs`` into ``out`` on the Ray cluster of ``options.cluster``.

    The dataset is the one a single-process replay with the same shards writes (see
    :func:`~hand_pose_refiner.refinement.replay.replay`). Recordings longer than
    ``options.segment_frames`` (default :data:`DEFAULT_SEGMENT_FRAMES`) are cut.
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
