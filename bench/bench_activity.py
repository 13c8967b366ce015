"""Inference time of the activity recogniser per window, on CPU.

Goal: < 5 ms per window (features + model, batch of one) on the project's 2-core CPU machine.
Also times the recogniser end to end (per pushed frame, two tracked hands). Single-threaded by
default: with --threads 2 on a loaded 2-core machine, batch-one inference becomes far slower
(threads wait for a core), which is why the recogniser should run with one torch thread.

    .venv/bin/python bench/bench_activity.py [--checkpoint runs/activity_synthetic/model.safetensors]
                                             [--threads 1] [--repeats 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np
import torch

from hand_pose_refiner.activity.features import usable_keypoints, window_features
from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.recognizer import ActivityRecognizer
from hand_pose_refiner.config import Config
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.synthetic import curled_hand, open_hand


def stream(count: int, seed: int = 0) -> list[FrameHands]:
    """Two tracked hands moving at ~30 fps with jittered stamps."""
    rng = np.random.default_rng(seed)
    stamps = np.cumsum(rng.uniform(0.028, 0.040, count))
    frames = []
    for t in stamps:
        hands = np.stack([open_hand((200 + 80 * np.cos(t), 240 + 60 * np.sin(t)), scale=1.5),
                          curled_hand((440 + 80 * np.cos(1.3 * t), 240 + 60 * np.sin(1.3 * t)))])
        hands += rng.normal(0, 1.0, hands.shape)
        frames.append(FrameHands(int(t * 1e9), 640, 480, hands, handedness=[1, 2], track_ids=[3, 4]))
    return frames


def timed(repeats: int, run) -> np.ndarray:
    for _ in range(5):
        run()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        run()
        times[i] = time.perf_counter() - start
    return times * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained checkpoint (default: an untrained model; same cost)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = Config().activity
    if args.checkpoint:
        model = ActivityModel.load(args.checkpoint, config)
    else:
        model = ActivityModel.for_config(config)
    model.eval()
    frames = stream(config.window_frames)
    stamps = np.array([f.stamp_ns for f in frames])
    keypoints = np.stack([f.keypoints[0] for f in frames])
    valid = usable_keypoints(keypoints, np.stack([f.keypoint_states[0] for f in frames]))
    features = window_features(stamps, keypoints, valid)
    assert features is not None

    feature_ms = timed(args.repeats, lambda: window_features(stamps, keypoints, valid))
    model_ms = timed(args.repeats, lambda: model.predict_proba(features[None]))
    batch = np.repeat(features[None], 16, axis=0)
    batch_ms = timed(max(args.repeats // 4, 10), lambda: model.predict_proba(batch)) / 16
    parameters = sum(p.numel() for p in model.parameters())
    print(f"activity model: ST-GCN {model.channels}, {parameters} parameters, window "
          f"{config.window_frames} poses, torch {torch.__version__}, {args.threads} thread(s)")
    for label, ms in (("features per window:       ", feature_ms), ("model per window (batch 1):", model_ms)):
        print(f"{label} median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms")
    print(f"model per window (batch 16): median {np.median(batch_ms):.3f} ms")
    total = np.median(feature_ms) + np.median(model_ms)
    print(f"per window, features + model: {total:.3f} ms (goal < 5 ms): {'ok' if total < 5 else 'MISSED'}")

    long_stream = stream(600, seed=1)
    recognizer = ActivityRecognizer(config, model)
    start = time.perf_counter()
    results = sum(len(recognizer.push(frame)) for frame in long_stream)
    elapsed = time.perf_counter() - start
    print(f"recogniser: {len(long_stream)} frames x 2 tracks in {elapsed * 1e3:.1f} ms "
          f"({elapsed / len(long_stream) * 1e3:.3f} ms per frame, {results} results, "
          f"{elapsed / max(results, 1) * 1e3:.3f} ms per result incl. buffering)")


if __name__ == "__main__":
    main()
