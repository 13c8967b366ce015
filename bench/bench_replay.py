"""Replay speed: frames per second with model inference, and again with cached predictions.

Replays every clip in ../shared/data/bare_hand_clips twice into temporary folders sharing one
cache: the first run decodes and runs detector + pose estimator, the second reuses the cached
frames and predictions and only re-runs the filters and rewrites the dataset (goal >= 1,000
frames/s). One torch thread: on a shared CPU that is the fastest setting.

    .venv/bin/python bench/bench_replay.py [--clips DIR]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import torch

from hand_pose_refiner.config import Config, ModelsConfig
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay import ReplaySettings, replay

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bare_hand_clips"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("hand_pose_refiner").setLevel(logging.ERROR)
    inputs = [InputSpec(path) for path in sorted(args.clips.glob("*.webm"))]
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    with tempfile.TemporaryDirectory() as folder:
        options = ReplaySettings(cache_dir=Path(folder) / "cache", progress=False)
        for label in ("with model inference", "with cached predictions"):
            summary = replay(inputs, Path(folder) / label.replace(" ", "_"), Config(), detector, estimator,
                             options)
            totals = summary.as_dict()
            print(f"replay {label:24s}: {totals['frames']} frames in {summary.seconds:.2f} s = "
                  f"{totals['frames_per_s']:.0f} frames/s ({totals['accepted_hands']} accepted hands)")


if __name__ == "__main__":
    main()
