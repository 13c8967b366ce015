"""How far landmark following may reach across dropped frames: followed hands against fresh detections.

A graph that cannot keep up processes every k-th camera frame; the pose estimator then follows its
hands from the last frame it processed, ``k`` frames back, as long as that is at most
``models.landmark_tracking_max_gap_s`` ago (else it waits for the detector). This script replays
each real bare-hand clip (../shared/data/bare_hand_clips, resized to 640x480, at its own frame
times) processing every k-th frame, following hands as the live pose estimator does
(:class:`HandFollower`, the detector only when fewer than ``max_hands`` are followed), and
compares each processed frame's followed hands with the hands found afresh on that frame
(detector, then pose estimator):

- hands per frame, followed and fresh;
- for each fresh hand, the followed hand nearest to it: its mean keypoint distance in hand sizes
  (keypoint-box diagonal of the fresh hand), median over hands, and the share of fresh hands with
  no followed hand within 0.2 hand sizes (a lost or misplaced hand).

Clips hands1-3 are the tuning half (the gap is chosen there), hands4, hands5 and hands8 the test half.

    .venv/bin/python bench/bench_following_gap.py [--steps 1 3 6 9] [--max-frames 240]
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import cv2
import numpy as np

from hand_pose_refiner.config import Config
from hand_pose_refiner.hands import FrameHands, box_diagonal
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import HandFollower
from hand_pose_refiner.ros.probe import read_clip

CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bare_hand_clips"
HALVES = {"tuning": ("hands1", "hands2", "hands3"), "test": ("hands4", "hands5", "hands8")}
LOST = 0.2  # hand sizes


def distances(fresh: FrameHands, followed: FrameHands) -> list[float]:
    """Per fresh hand: mean keypoint distance to the nearest followed hand, in fresh hand sizes
    (inf when nothing is followed)."""
    result = []
    for hand in range(len(fresh)):
        if not len(followed):
            result.append(float("inf"))
            continue
        gaps = np.nanmean(np.linalg.norm(followed.keypoints - fresh.keypoints[hand], axis=-1), axis=-1)
        result.append(float(np.nanmin(gaps)) / max(box_diagonal(fresh.keypoints[hand]), 1.0))
    return result


def replay(frames: list[np.ndarray], fps: float, step: int, config: Config, models: tuple) -> dict:
    """Every ``step``-th frame followed as the live pose estimator does, against fresh hands."""
    detector, estimator = models
    follower = HandFollower(estimator, config)
    followed_hands, fresh_hands, gaps = [], [], []
    for index in range(0, len(frames), step):
        rgb = frames[index]
        stamp = round(index * 1e9 / fps) + 1
        (detections,) = detector.detect([rgb])
        followed = follower.estimate(rgb, stamp, detections if follower.needs_detections(stamp) else None)
        (fresh,) = estimator.estimate([rgb], [detections], [stamp])
        followed = followed if followed is not None else FrameHands.empty(stamp)
        followed_hands.append(len(followed))
        fresh_hands.append(len(fresh))
        gaps += distances(fresh, followed)
    gaps_array = np.array(gaps)
    return {"frames": len(fresh_hands), "followed": float(np.mean(followed_hands)),
            "fresh": float(np.mean(fresh_hands)),
            "median": float(np.median(gaps_array)) if len(gaps_array) else float("nan"),
            "lost": float(np.mean(gaps_array > LOST)) if len(gaps_array) else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 6, 9])
    parser.add_argument("--max-frames", type=int, default=240)
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    logging.getLogger("hand_pose_refiner").setLevel(logging.ERROR)
    base = Config()
    # every step is followed (the gap rule is what is being measured), the rest as the live config
    config = replace(base, models=replace(base.models, device="cpu", landmark_tracking_max_gap_s=10.0))
    models = create_backend(config)
    print(f"{'half':7} {'clip':7} {'step':>4} {'gap ms':>6} {'frames':>6} {'followed':>8} {'fresh':>6} "
          f"{'median dist':>11} {'lost':>6}")
    for half, names in HALVES.items():
        for name in names:
            bgr, fps = read_clip(args.clips / f"{name}.webm", args.max_frames)
            frames = [cv2.cvtColor(cv2.resize(frame, (640, 480)), cv2.COLOR_BGR2RGB) for frame in bgr]
            for step in args.steps:
                row = replay(frames, fps, step, config, models)
                print(f"{half:7} {name:7} {step:4d} {1e3 * step / fps:6.0f} {row['frames']:6d} "
                      f"{row['followed']:8.2f} {row['fresh']:6.2f} {row['median']:11.3f} {row['lost']:6.1%}")


if __name__ == "__main__":
    main()
