"""Replay recordings through the detector, the pose model and the live filter chain, offline.

The public entry of a replay: :func:`replay`, its :class:`ReplaySettings` and the
:class:`ReplaySummary` it returns. A replay is a pipeline of stages, each in its own module:

* :mod:`.shards`: the recordings planned into shards (whole, or time segments of long ones)
  and each shard's frames decoded once into the frame store (:mod:`.cache`);
* :mod:`.inference`: detector -> pose estimator over the frames, the prediction cache around it;
* :mod:`.filtering`: :class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` in offline
  mode, the same classes and configuration the live nodes run;
* :mod:`.stages`: one shard through those three (:func:`~.stages.run_shard`);
* :mod:`.assembly`: the shards' results put together (track ids joined across cuts);
* :mod:`.export`: the output folder's files.

The output folder holds

* ``images/``: every frame as JPEG (the exact pixels the models saw),
* ``annotations.json``: a COCO keypoint dataset of the filtered hands (visibility from the
  filters' keypoint states),
* ``predictions.jsonl``: one line per frame with the raw and the filtered hands,
* ``stats.json``: the filters' totals and rejections per rule, per input and merged,
* ``summary.json``: counts, rates and speeds, the frames skipped while reading (by reason), and
  the inputs that could not be read,
* ``poses_bag/`` (optional): an MCAP rosbag2 with the images and the filtered HandPoseArray.

With ``options.cluster`` the shards run as Ray tasks (:mod:`.ray_replay`; the cluster itself is
:mod:`.distributed`), and the dataset is the same.

The folder is built under ``<out>.partial`` and renamed when complete. A frame that cannot be
decoded is skipped and counted; an input that cannot be read at all, or that meets an
unexpected error, is reported by name and left out; the others are still processed and written.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hand_pose_refiner.config import Config
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.assembly import Assembly, check_output
from hand_pose_refiner.refinement.cache import model_key
from hand_pose_refiner.refinement.export import ANNOTATIONS, PREDICTIONS
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.ray_replay import replay_on_ray
from hand_pose_refiner.refinement.replay_types import InputResult, ReplaySettings, ReplaySummary
from hand_pose_refiner.refinement.shards import plan_shards
from hand_pose_refiner.refinement.stages import run_shard

# The replay's public names, importable from here whichever stage module defines them.
__all__ = ["ANNOTATIONS", "PREDICTIONS", "InputResult", "ReplaySettings", "ReplaySummary", "Replayer",
           "replay"]


class Replayer:
    """Runs one replay in this process; see the module docstring. Reusable with the same models."""

    def __init__(self, config: Config, detector: HandDetector, estimator: PoseEstimator,
                 options: ReplaySettings | None = None) -> None:
        self.config = config
        self.detector, self.estimator = detector, estimator
        self.options = options or ReplaySettings()

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


def replay(inputs: Sequence[InputSpec], out: Path, config: Config, detector: HandDetector,
           estimator: PoseEstimator, options: ReplaySettings | None = None) -> ReplaySummary:
    """Replay ``inputs`` into the folder ``out``; see the module docstring.

    In this process, or on a Ray cluster when ``options.cluster`` is set: the same shards, the
    same per-shard pipeline (:func:`~.stages.run_shard`) and the same assembly either way.
    """
    options = options or ReplaySettings()
    if options.cluster is not None:
        return replay_on_ray(inputs, out, config, detector, estimator, options)
    return Replayer(config, detector, estimator, options).run(inputs, out)
