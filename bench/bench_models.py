"""Milliseconds per 640x480 frame: the torch port (detector + pose) beside MediaPipe itself.

Frames with one and with two hands come from ../shared/data/bare_hand_clips, resized to 640x480.
Both run detection on every frame (MediaPipe in static-image mode) on the same frames, in one run,
the port also with a refined detector's kept heads (a second set of heads on the same backbone);
MediaPipe is timed in a child process because its graph threads, once started, stall torch's
CPU thread pool in the same process (seconds per frame), which would not be a fair comparison.
Usage: python bench/bench_models.py [--repeats 30] [--threads 2] [--rounds 3] [--runtime auto|torch|openvino]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import cv2
import numpy as np
import torch

from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.runtime import RUNTIMES

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bare_hand_clips"


def frames_with_hands(hands: int, count: int = 5) -> list[np.ndarray]:
    """640x480 RGB frames in which the port finds exactly ``hands`` hands."""
    detector = MediaPipeHandDetector(device="cpu")
    estimator = MediaPipePoseEstimator(device="cpu")
    found = []
    for clip in sorted(CLIPS.glob("*.webm")):
        capture = cv2.VideoCapture(str(clip))
        index = 0
        while len(found) < count:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if index % 10:
                continue
            image = cv2.cvtColor(cv2.resize(frame, (640, 480)), cv2.COLOR_BGR2RGB)
            if len(estimator.estimate([image], detector.detect([image]))[0]) == hands:
                found.append(image)
        capture.release()
    return found


def per_frame_ms(run: Callable[[np.ndarray], object], frames: list[np.ndarray], repeats: int) -> float:
    for image in frames:  # warm-up
        run(image)
    times = []
    for _ in range(repeats):
        for image in frames:
            start = time.perf_counter()
            run(image)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def mediapipe_ms(frames: list[np.ndarray], repeats: int) -> tuple[float, list[int]]:
    """MediaPipe Hands (full model, 2 hands, static-image mode) per-frame time, in this process.

    Also the number of hands it finds in each frame: the comparison is only like for like when
    it runs the landmark model on as many hands as the port does.
    """
    import mediapipe as mp

    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=1) as hands:
        found = [len(hands.process(image).multi_hand_landmarks or []) for image in frames]
        return per_frame_ms(hands.process, frames, repeats), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="port and MediaPipe alternate this often")
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES, help="the port's inference runtime")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime = args.runtime
    detector = MediaPipeHandDetector(device="cpu", runtime=runtime)
    estimator = MediaPipePoseEstimator(device="cpu", runtime=runtime)

    kept = MediaPipeHandDetector(device="cpu", runtime=runtime)
    kept.net.keep_heads()  # a refined detector keeps the pre-trained heads next to its own

    def port(image: np.ndarray) -> object:
        with torch.inference_mode():
            return estimator.estimate([image], detector.detect([image]))

    def port_kept(image: np.ndarray) -> object:
        with torch.inference_mode():
            return estimator.estimate([image], kept.detect([image]))

    print(f"torch {torch.__version__}, port on {detector.runtime}, {args.threads} threads, "
          f"median ms per frame (640x480)")
    frames = {hands: frames_with_hands(hands) for hands in (1, 2)}
    # The first few hundred frames of a process run slower (allocator and kernel caches): timed
    # first, they made the 1-hand ratio look 0.2x worse than in later rounds. Warm up on both sets.
    for _ in range(3):
        for image in frames[1] + frames[2]:
            port(image)
            port_kept(image)
    print(f"{'round':>5}  {'hands':>5}  {'port':>8}  {'kept heads':>10}  {'MediaPipe':>9}  ratio  kept heads")
    ratios: dict[tuple[int, bool], list[float]] = {(h, k): [] for h in (1, 2) for k in (False, True)}
    for round_number in range(1, args.rounds + 1):
        for hands in (1, 2):
            ours = per_frame_ms(port, frames[hands], args.repeats)
            ours_kept = per_frame_ms(port_kept, frames[hands], args.repeats)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                theirs, found = pool.apply(mediapipe_ms, (frames[hands], args.repeats))
            ratios[hands, False].append(ours / theirs)
            ratios[hands, True].append(ours_kept / theirs)
            print(f"{round_number:>5}  {hands:>5}  {ours:8.2f}  {ours_kept:10.2f}  {theirs:9.2f}  "
                  f"{ours / theirs:4.2f}x  {ours_kept / theirs:4.2f}x  "
                  f"({len(frames[hands])} frames, MediaPipe found {'/'.join(map(str, found))} hands)")
    for (hands, with_kept), values in ratios.items():
        print(f"{hands} hand(s){', kept heads' if with_kept else ''}: median ratio "
              f"{statistics.median(values):.2f}x over {len(values)} rounds (goal <= 1.0x)")
    # What the second set of heads of a refined detector costs on the shared backbone.
    plain_ms = per_frame_ms(lambda image: detector.detect([image]), frames[1], args.repeats)
    kept_ms = per_frame_ms(lambda image: kept.detect([image]), frames[1], args.repeats)
    print(f"palm detector alone: {plain_ms:.2f} ms, with kept heads {kept_ms:.2f} ms "
          f"({kept_ms / plain_ms:.2f}x)")
    # Tiles (mediapipe.detector_tile_size): one more detector pass per tile.
    for tile_size in (1.0, 0.5):
        tiled = MediaPipeHandDetector(device="cpu", tile_size=tile_size, runtime=runtime)
        tiled_ms = per_frame_ms(lambda image, tiled=tiled: tiled.detect([image]), frames[1], args.repeats)
        print(f"palm detector with tiles of {tile_size} x the short side ({len(tiled.rois(640, 480)) - 1} "
              f"tiles): {tiled_ms:.2f} ms ({tiled_ms / plain_ms:.2f}x)")
    # The live schedule (mediapipe.detector_tiles_per_frame): the whole frame and 3 tiles in one pass,
    # beside the same 4 views one pass each, on a 1280x720 frame.
    tiled = MediaPipeHandDetector(device="cpu", tile_size=0.5, batch_size=1, runtime=runtime)
    wide = [cv2.resize(image, (1280, 720)) for image in frames[1]]
    views = tiled.rois(1280, 720)[:4]
    batched_ms = per_frame_ms(lambda image: tiled.detect_views(image, views), wide, args.repeats)
    single_ms = per_frame_ms(lambda image: [tiled.detect_views(image, views[i:i + 1]) for i in range(4)],
                             wide, args.repeats)
    print(f"whole frame + 3 tiles of a 1280x720 frame: one pass {batched_ms:.2f} ms, one pass per view "
          f"{single_ms:.2f} ms ({batched_ms / single_ms:.2f}x)")


if __name__ == "__main__":
    main()
