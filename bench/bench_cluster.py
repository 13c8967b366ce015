"""Replay throughput on Ray with 1 and 2 workers, with model inference and on cached predictions.

Six real bare-hand clips (FRAMES frames each, one shard per clip) replayed through a local Ray
instance with 1 CPU (one worker) and with 2 CPUs (two workers), one torch thread per worker;
each Ray instance is warmed up first (workers started, models shipped), so the figures are
steady-state replay, not start-up. Also measured: the same replay in one process without Ray,
and the driver's own ceiling (placing the frames and writing the dataset, the part that does
not scale with workers).

Prints frames/s and the scaling efficiency: (frames/s with 2 workers) / (2 x frames/s with 1).
Needs the cluster extra. Run: .venv/bin/python bench/bench_cluster.py
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from _checkout import REPO

# A throwaway local Ray instance: no authentication token written to ~/.ray for it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from hand_pose_refiner.config import Config, ModelsConfig
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.assembly import Assembly
from hand_pose_refiner.refinement.distributed import ClusterSettings, require_ray
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay import ReplaySettings, replay
from hand_pose_refiner.refinement.shards import plan_shards
from hand_pose_refiner.refinement.stages import run_shard

DATA = REPO.parent / "shared" / "data" / "bare_hand_clips"
FRAMES = 60


def timed(inputs, out, config, models, options) -> float:
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    summary = replay(inputs, out, config, *models, options)
    seconds = time.perf_counter() - began
    assert not summary.failed, summary.failed
    return summary.total("frames") / seconds


def main() -> None:
    ray = require_ray()
    torch.set_num_threads(1)
    clips = sorted(DATA.glob("*.webm"))
    inputs = [InputSpec(clip, max_frames=FRAMES) for clip in clips]
    frames = len(inputs) * FRAMES
    config = Config()
    models = create_backend(ModelsConfig(device="cpu"))
    work = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    base = ReplaySettings(progress=False, segment_frames=FRAMES)
    print(f"{len(inputs)} recordings x {FRAMES} frames = {frames} frames, 640x360, CPU, 1 torch thread "
          f"per worker")
    try:
        cache = work / "cache_single"
        single = {"inference": timed(inputs, work / "single", config, models, replace(base, cache_dir=cache)),
                  "cached": timed(inputs, work / "single", config, models, replace(base, cache_dir=cache))}
        results = {}
        for workers in (1, 2):
            cluster = ClusterSettings("local", cpus_per_task=1, local_cpus=workers)
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
            try:
                options = replace(base, cluster=cluster)
                warm = [InputSpec(clip, max_frames=4) for clip in clips[:workers]]
                timed(warm, work / "warm", config, models, options)
                options = replace(options, cache_dir=work / f"cache_{workers}")
                results[workers] = {"inference": timed(inputs, work / "ray", config, models, options),
                                    "cached": timed(inputs, work / "ray", config, models, options)}
            finally:
                ray.shutdown()

        # The driver's share: place every frame and write the dataset, from finished results.
        shard_results = []
        for shard in plan_shards(inputs, FRAMES, base.overlap_frames):
            result = run_shard(shard, config, *models, work / "cache_single", base)
            for record in result.frames:
                record.image = Path(record.image).read_bytes()
            shard_results.append(result)
        began = time.perf_counter()
        assembly = Assembly(work / "assembled", inputs, base)
        for result in shard_results:
            assembly.add(result)
        assembly.finish(began)
        driver = frames / (time.perf_counter() - began)

        print(f"{'':22s}{'one process':>14s}{'Ray, 1 worker':>16s}{'Ray, 2 workers':>16s}{'efficiency':>12s}")
        for mode in ("inference", "cached"):
            one, two = results[1][mode], results[2][mode]
            print(f"{'frames/s, ' + mode:22s}{single[mode]:14.1f}{one:16.1f}{two:16.1f}"
                  f"{two / (2 * one):12.2f}")
        print(f"driver ceiling (placing frames, writing the dataset): {driver:.0f} frames/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
