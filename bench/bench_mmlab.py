"""Per-frame inference time of the OpenMMLab backend next to the default (MediaPipe) backend.

Both run on the same real frames (a bare-hand clip, 640x360, from ../shared/data). The pose
models are timed on the same hand boxes for both backends (those the default detector finds, or
the whole frame when it finds none), so the hand count does not differ between them. The OpenMMLab
models are the built-in configs (or your own, with --detector-config/--pose-config and
checkpoints); weights do not change the time of a forward pass, so random ones are fine here.

With ``--train`` it also times fine-tuning (one epoch on the labelled OneHand10K images, no
backbone freezing): seconds per training iteration of each OpenMMLab model.

    .venv-mmlab/bin/python bench/bench_mmlab.py [--frames 10] [--threads 2] [--configs small paper]
                                                [--train]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np
import torch

from hand_pose_refiner.hands import Detections
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def timed(run, repeats: int = 1) -> tuple[float, object]:
    started = time.perf_counter()
    for _ in range(repeats):
        result = run()
    return (time.perf_counter() - started) / repeats, result


def bench(name: str, detector: HandDetector, estimator: PoseEstimator, frames: list[np.ndarray],
          boxes: list[Detections]) -> dict[str, float]:
    detector.detect(frames[:1])  # first pass: allocations, lazy initialisation
    estimator.estimate(frames[:1], boxes[:1])
    detect_s, pose_s, hands = [], [], 0
    for frame, found in zip(frames, boxes, strict=True):
        seconds, _ = timed(lambda frame=frame: detector.detect([frame]))
        detect_s.append(seconds)
        seconds, _ = timed(lambda frame=frame, found=found: estimator.estimate([frame], [found]))
        pose_s.append(seconds)
        hands += len(found)
    # Median and fastest frame: on a shared CPU the fastest is the one least disturbed by others.
    total_s = [a + b for a, b in zip(detect_s, pose_s, strict=True)]
    result = {"detect_ms": 1000 * statistics.median(detect_s), "pose_ms": 1000 * statistics.median(pose_s),
              "total_ms": 1000 * statistics.median(total_s), "best_total_ms": 1000 * min(total_s),
              "hands_per_frame": hands / len(frames)}
    print(f"{name:50s} {result['detect_ms']:10.1f} {result['pose_ms']:10.1f} {result['total_ms']:10.1f} "
          f"{result['best_total_ms']:10.1f} {result['hands_per_frame']:6.2f}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DATA / "bare_hand_clips" / "hands1.webm")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=["small", "paper"],
                        help="built-in configs (small, paper) to time, or 'own' for the files below")
    parser.add_argument("--detector-config", default="")
    parser.add_argument("--pose-config", default="")
    parser.add_argument("--detector-checkpoint", default=None)
    parser.add_argument("--pose-checkpoint", default=None)
    parser.add_argument("--train", action="store_true", help="also time training iterations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    frames = [frame.rgb for frame in read_frames(InputSpec(args.clip, stride=5, max_frames=args.frames))]
    height, width = frames[0].shape[:2]
    default_detector = MediaPipeHandDetector(device="cpu")
    default_estimator = MediaPipePoseEstimator(device="cpu")
    whole = Detections(np.array([[0, 0, width - 1, height - 1]], np.float32), np.ones(1, np.float32),
                       np.zeros((1, 0, 2)), width, height)
    boxes = [found if len(found) else whole for found in default_detector.detect(frames)]
    boxes = [Detections(found.boxes, found.scores, np.zeros((len(found), 0, 2)), width, height)
             for found in boxes]
    print(f"{len(frames)} frames {width}x{height} of {args.clip.name}, {args.threads} torch threads, CPU; "
          f"median per frame, and the fastest frame")
    print(f"{'backend':50s} {'detect ms':>10s} {'pose ms':>10s} {'total ms':>10s} {'best ms':>10s} "
          f"{'hands':>6s}")
    # MediaPipe's pose model wants its palm detections (rotated crops); the box crops are what the
    # mmlab boxes would give it, so it is timed on both.
    palms = default_detector.detect(frames)
    bench("default (MediaPipe), palm crops", default_detector, default_estimator, frames, palms)
    bench("default (MediaPipe), box crops", default_detector, default_estimator, frames, boxes)

    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    for name in args.configs:
        own = name == "own"
        detector = MMLabHandDetector(args.detector_checkpoint if own else None,
                                     args.detector_config if own else name, device="cpu")
        estimator = MMLabPoseEstimator(args.pose_checkpoint if own else None,
                                       args.pose_config if own else name, device="cpu")
        bench(f"mmlab {name} ({detector.name}, {estimator.name})", detector, estimator, frames, boxes)
        if args.train:
            bench_training(name, detector, estimator)
    return 0


def bench_training(name: str, detector: HandDetector, estimator: PoseEstimator) -> None:
    """Seconds per iteration of one epoch on the labelled OneHand10K images (batch 2 and 4)."""
    import math

    from hand_pose_refiner.coco import load_coco
    from hand_pose_refiner.models.base import FineTuneSettings

    images = load_coco(DATA / "labelled_hands" / "onehand10k" / "test_onehand10k.json")
    hands = sum(len(item.hands) for item in images)
    for model, batch, samples in ((detector, 2, len(images)), (estimator, 4, hands)):
        config = FineTuneSettings(epochs=1, batch_size=batch, learning_rate=1e-4, freeze_backbone=False)
        seconds, _ = timed(lambda model=model, config=config: model.fine_tune(images, config, val_dataset=[]))
        iterations = math.ceil(samples / batch)
        print(f"  training {name} {model.name}: {seconds / iterations:.2f} s per iteration "
              f"(batch {batch}, {iterations} iterations)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
