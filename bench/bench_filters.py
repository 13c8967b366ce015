"""Frames per second of spatial filter + tracking + online temporal filter, two hands per frame.

Goal: >= 5,000 frames/s on the project's 2-core CPU machine (< 0.2 ms per frame).

    .venv/bin/python bench/bench_filters.py [--frames 3000] [--repeats 3]

Measured on that machine while other jobs shared it (load 14-15 on its 2 cores), best of 7,
three runs interleaved with the previous version: spatial filter 10,800-16,000 frames/s, tracking
18,800-26,500, online temporal filter 18,000-18,100, all three through PoseFilterPipeline
5,510-5,580 frames/s (0.18 ms/frame): the goal is reached. The previous version gave 3,040-4,550
frames/s in those same runs (its best on a quiet machine: 4,750-4,820, 0.21 ms/frame; spatial
14,000-14,900, tracking 20,200-21,000, temporal 13,900-15,000). Before the filters were first
reworked for speed, a quiet run gave 6,000 / 13,600 / 6,450 and 2,290 frames/s (0.435 ms/frame).
Every speed-up keeps the outputs bit for bit (test/test_filter_regression.py).
"""

from __future__ import annotations

import argparse
import logging
import time

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.spatial import SpatialFilter
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter
from hand_pose_refiner.filters.tracking import HandTracker
from hand_pose_refiner.synthetic import two_circling_hands


def best_of(repeats: int, run) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    logging.getLogger("hand_pose_refiner").setLevel(logging.ERROR)  # the spikes are on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = Config()
    frames = two_circling_hands(args.frames)

    def pipeline() -> None:
        chain = PoseFilterPipeline(config, FilterMode.ONLINE)
        for frame in frames:
            chain.push(frame)
        chain.flush()

    spatial = SpatialFilter(config.spatial_filter)
    accepted = [spatial(f).accepted for f in frames]
    tracker = HandTracker(config.tracking)
    tracked = [tracker.update(f) for f in accepted]

    def run_spatial() -> None:
        stage = SpatialFilter(config.spatial_filter)
        for frame in frames:
            stage(frame)

    def run_tracking() -> None:
        stage = HandTracker(config.tracking)
        for frame in accepted:
            stage.update(frame)

    stages = {
        "spatial filter": run_spatial,
        "tracking": run_tracking,
        "temporal filter (online)": lambda: TemporalFilter(config.temporal_filter, config.tracking,
                                                           FilterMode.ONLINE).process(tracked),
        "all three (PoseFilterPipeline, online)": pipeline,
    }
    print(f"{args.frames} frames, 2 hands each, best of {args.repeats}")
    for name, run in stages.items():
        seconds = best_of(args.repeats, run)
        per_frame_ms = 1e3 * seconds / args.frames
        print(f"  {name:40s} {args.frames / seconds:9.0f} frames/s  {per_frame_ms:6.3f} ms/frame")
    chain = PoseFilterPipeline(config, FilterMode.ONLINE)
    out = chain.process(frames)
    print(f"output frames: {len(out)}; rejections: {chain.stats.as_dict()}")


if __name__ == "__main__":
    main()
