"""Jitter of real hand poses before and after the temporal filter, on the bare-hand clips.

Runs the default detector and pose estimator over every clip in ../shared/data/bare_hand_clips,
then the spatial filter and tracker ("before"), then the temporal filter ("after": offline mode,
and online mode with its default delay and One Euro smoothing). Jitter is the mean magnitude of
keypoint acceleration (second difference over the real frame times), in hand sizes per s^2, over
every keypoint seen in three consecutive frames of a track. Also prints how many keypoints and
whole hands the filter filled in.

    .venv/bin/python bench/jitter_bare_hand_clips.py [--clips DIR] [--max-frames N]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.spatial import SpatialFilter, valid_keypoints
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter
from hand_pose_refiner.filters.tracking import HandTracker
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.skeleton import INTERPOLATED

DEFAULT_CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bare_hand_clips"


def read_clip(path: Path, max_frames: int) -> tuple[list[np.ndarray], list[int]]:
    """RGB frames and their stamps (ns, from the container's presentation times)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames, stamps = [], []
    while len(frames) < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        stamp_ns = round(capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
        if stamps and stamp_ns <= stamps[-1]:  # some containers repeat times; keep order
            stamp_ns = stamps[-1] + 1
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        stamps.append(stamp_ns)
    capture.release()
    return frames, stamps


def jitter(frames: list[FrameHands]) -> tuple[float, int]:
    """Mean keypoint acceleration (hand sizes / s^2) and how many samples it averages."""
    by_track: dict[int, list[tuple[float, np.ndarray, np.ndarray, float]]] = {}
    for frame in frames:
        for i, track_id in enumerate(frame.track_ids.tolist()):
            keypoints = frame.keypoints[i].astype(np.float64)
            valid = valid_keypoints(frame.keypoint_states[i]) & np.isfinite(keypoints).all(axis=-1)
            box = keypoints[valid]
            size = float(np.hypot(*(box.max(0) - box.min(0)))) if len(box) else 0.0
            by_track.setdefault(track_id, []).append((frame.stamp_ns * 1e-9, keypoints, valid, size))
    values = []
    for samples in by_track.values():
        triples = zip(samples, samples[1:], samples[2:], strict=False)
        for (t0, p0, v0, _), (t1, p1, v1, s1), (t2, p2, v2, _) in triples:
            if s1 <= 0 or t1 - t0 > 0.2 or t2 - t1 > 0.2:
                continue
            both = v0 & v1 & v2
            acceleration = ((p2 - p1) / (t2 - t1) - (p1 - p0) / (t1 - t0)) / ((t2 - t0) / 2)
            values.extend((np.linalg.norm(acceleration[both], axis=-1) / s1).tolist())
    return (float(np.mean(values)) if values else float("nan")), len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--max-frames", type=int, default=400)
    args = parser.parse_args()
    logging.getLogger("hand_pose_refiner").setLevel(logging.ERROR)
    config = Config()
    detector, estimator = create_backend(config)
    online = replace(config.temporal_filter, smoothing=True)
    print(f"{'clip':34s} {'frames':>6s} {'hands':>6s} {'jitter before':>13s} {'offline':>8s} "
          f"{'online':>8s} {'filled kp':>9s} {'filled hands':>12s}")
    for path in sorted(args.clips.glob("*.webm")):
        images, stamps = read_clip(path, args.max_frames)
        started = time.perf_counter()
        raw = []
        for start in range(0, len(images), 8):
            batch = images[start:start + 8]
            raw.extend(estimator.estimate(batch, detector.detect(batch), stamps[start:start + 8]))
        inference_s = time.perf_counter() - started
        spatial, tracker = SpatialFilter(config.spatial_filter), HandTracker(config.tracking)
        before = [tracker.update(spatial(frame).accepted) for frame in raw]
        offline = TemporalFilter(config.temporal_filter, config.tracking, FilterMode.OFFLINE)
        after_offline = offline.process(before)
        after_online = TemporalFilter(online, config.tracking, FilterMode.ONLINE).process(before)
        filled_keypoints = sum(int((f.keypoint_states == INTERPOLATED).sum()) for f in after_offline)
        results = [jitter(before)[0], jitter(after_offline)[0], jitter(after_online)[0]]
        print(f"{path.name[:34]:34s} {len(images):6d} {sum(len(f) for f in before):6d} {results[0]:13.1f} "
              f"{results[1]:8.1f} {results[2]:8.1f} {filled_keypoints:9d} "
              f"{offline.stats.totals['interpolated_hands']:12d}"
              f"   ({1e3 * inference_s / len(images):.0f} ms/frame)")
    print("jitter: mean keypoint acceleration, hand sizes / s^2 (lower is smoother)")


if __name__ == "__main__":
    main()
