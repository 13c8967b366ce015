"""The filter stage of a replay: a shard's raw hands through the live filter chain, offline.

The same :class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` and configuration the
live nodes run, in offline mode; a folder of stills first goes through
:mod:`~hand_pose_refiner.filters.recurring`, which needs the whole folder at once.
"""

from __future__ import annotations

import time
from dataclasses import replace

from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.recurring import drop_recurring_objects
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.refinement.cache import StoredFrame
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.shards import FrameRecord, ShardResult


def config_for(spec: InputSpec, config: Config) -> Config:
    """The config for one input: stills (unrelated photographs) are not filtered over time."""
    if not spec.stills:
        return config
    return replace(config, tracking=replace(config.tracking, min_hits=1),
                   temporal_filter=replace(config.temporal_filter, enabled=False))


def filter_shard(result: ShardResult, config: Config, frames: list[StoredFrame],
                 raw: list[FrameHands]) -> None:
    """Filter a shard's frames into ``result``: its owned frames (raw and kept hands), the kept
    hands of its leading overlap, the filters' counts and time; or the error when a cached frame
    the recurring-object filter needs cannot be read back.
    """
    shard = result.shard
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
            return
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
