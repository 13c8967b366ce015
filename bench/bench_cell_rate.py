"""The glovebox cell live: the graph's rate and latency at the cell's camera sizes, and the hands found.

Two measurements, each for the glovebox config's detection schedule (tiles in rotation,
``mediapipe.detector_tiles_per_frame``) beside the same config with every tile on every frame, with the
refined models of a main-job run (``--deploy RUN/deploy.yaml``: its checkpoints; every other setting
from ``--config``, default ``config/glovebox.yaml``):

``graph``: the in-process runner (``hand-pose-refiner run``) fed real footage as sensor_msgs/Image at
30 Hz with wall-clock stamps, at each ``--sizes`` (default 1280x720 and 1920x1080): the gloved stills
(both views, alternating, resized to the size, each held 10 frames) and a bare-hand clip upscaled.
Prints delivered FPS, drops, image-stamp -> ``hand_poses`` latency p50/p95 and the runner's peak RSS.

``cost``: the same footage through the graph's two model stages in this process, one torch thread
each: CPU milliseconds per frame of each stage (thread CPU time, which the machine's other load
does not inflate, unlike the wall clock of ``graph``).

``held``: the gloved stills at their own sizes (side 1920x1080, top 1280x720), each held 10 frames at
30 Hz, one stream per view, through :meth:`HandPipeline.track_rgb` (what the nodes run): the stills
whose judged hand (``bench/data/gloved_stills_judgements.json``) is among the accepted hands within
its 10 frames, the stills with a hand judged not a hand, and on which of the 10 frames the true hand
first comes out; then the bare-hand clips upscaled to 1280x720: the frame each clip's first hand
comes out on. Halves: ``--half tuning`` / ``test`` (alternate stills, as refinement.split).

    .venv/bin/python bench/bench_cell_rate.py graph --deploy /work/runs/gloved/deploy.yaml [--seconds 10]
    .venv/bin/python bench/bench_cell_rate.py cost --deploy /work/runs/gloved/deploy.yaml [--seconds 10]
    .venv/bin/python bench/bench_cell_rate.py held --deploy /work/runs/gloved/deploy.yaml [--half test]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from _checkout import REPO

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(120 + os.getpid() % 60))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config/fastdds_shm_localhost.xml"))

import cv2

from hand_pose_refiner.config import Config, commented_yaml, load_config
from hand_pose_refiner.hands import boxes_from_keypoints
from hand_pose_refiner.refinement.scoring import VIEWS, judge, load_judgements, stills
from hand_pose_refiner.refinement.tuning_test_split import split_of

DATA = REPO.parent / "shared" / "data"
STILLS = DATA / "hags_gloved_assembly"
CLIPS = DATA / "bare_hand_clips"
JUDGEMENTS = REPO / "bench" / "data" / "gloved_stills_judgements.json"
HOLD = 10  # frames each still is held: a third of a second at 30 Hz
PERIOD_NS = 33_333_333


def cell_configs(config_path: Path, deploy: Path | None) -> dict[str, Config]:
    """The schedule's config (``--config`` with the deploy file's checkpoints) and the same with
    every tile on every frame."""
    config = load_config(config_path)
    if deploy is not None:
        deployed = load_config(deploy).models
        models = replace(config.models, detector_checkpoint=deployed.detector_checkpoint,
                         pose_checkpoint=deployed.pose_checkpoint)
        config = replace(config, models=models)
    every = replace(config, mediapipe=replace(config.mediapipe, detector_tiles_per_frame=0))
    rotation = config.mediapipe.detector_tiles_per_frame
    return {f"rotation ({rotation}/frame)": config, "every tile": every}


def gloved_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` BGR frames: the gloved stills of both views alternating, resized, each held HOLD frames."""
    names = stills(STILLS)
    paths = [STILLS / view / "gloved" / name for pair in zip(*(names[v] for v in VIEWS), strict=False)
             for view, name in zip(VIEWS, pair, strict=True)]
    frames: list[np.ndarray] = []
    for path in paths:
        image = cv2.resize(cv2.imread(str(path)), size, interpolation=cv2.INTER_AREA)
        frames += [image] * HOLD
        if len(frames) >= count:
            break
    return frames[:count]


def clip_frames(size: tuple[int, int], count: int, clip: str = "hands1.webm") -> list[np.ndarray]:
    from hand_pose_refiner.ros.probe import read_clip

    frames, _ = read_clip(CLIPS / clip, 1000)
    frames = [cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR) for frame in frames]
    return [frames[i % len(frames)] for i in range(count)]


@dataclass
class GraphRun:
    sent: int
    delivered: int
    fps: float
    p50_ms: float
    p95_ms: float
    peak_rss_mb: float


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_graph(config: Config, frames: list[np.ndarray], types: object) -> GraphRun:
    import rclpy

    from hand_pose_refiner.ros.probe import GraphProbe, start_process, stop_processes

    with tempfile.TemporaryDirectory(prefix="bench_cell_") as folder:
        path = Path(folder) / "cell.yaml"
        path.write_text(commented_yaml(config, offline_sections=False))
        process = start_process(["-m", "hand_pose_refiner.cli", "run", "--config", str(path)], cwd=REPO)
        probe = GraphProbe(rclpy, types)
        rss = float("nan")
        try:
            probe.wait_for_graph(image_subscribers=2, timeout=180.0)
            stamps, arrivals = probe.timed_run(frames, 30.0, types)
            rss = peak_rss_mb(process.pid)
        finally:
            probe.close()
            stop_processes([process])
    latency = np.array([(arrivals[s] - s) / 1e6 for s in arrivals]) if arrivals else np.array([np.nan])
    duration_s = (stamps[-1] - stamps[0]) / 1e9
    return GraphRun(len(stamps), len(arrivals), len(arrivals) / duration_s, float(np.percentile(latency, 50)),
                    float(np.percentile(latency, 95)), rss)


def graph(args: argparse.Namespace) -> None:
    from hand_pose_refiner.ros.interfaces import rclpy_message_types

    types = rclpy_message_types()
    configs = cell_configs(args.config, args.deploy)
    count = round(args.seconds * 30)
    print(f"{'size':9}  {'footage':14} {'detection':18} sent  deliv    FPS  p50 ms  p95 ms  peak RSS MB")
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.split("x"))
        footage = {"gloved stills": gloved_frames(size, count), "bare clip": clip_frames(size, count)}
        for name, frames in footage.items():
            for label, config in configs.items():
                run = measure_graph(config, frames, types)
                print(f"{size_text:9}  {name:14} {label:18} {run.sent:4} {run.delivered:6} {run.fps:6.1f} "
                      f"{run.p50_ms:7.1f} {run.p95_ms:7.1f}  {run.peak_rss_mb:8.0f}", flush=True)


def stage_costs(args: argparse.Namespace) -> None:
    """CPU milliseconds per frame of the graph's two model stages, each on one torch thread (as
    the runner gives each model node on 2 cores): the detector node's call on every frame, and the
    pose node's (followed hands, the detections while fewer than max_hands are followed, filters).
    Thread CPU time, so that other load on the machine does not count; the graph keeps camera
    rate when each stage stays under 33 ms, and its latency is about their sum."""
    import time

    import torch

    from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
    from hand_pose_refiner.filters.temporal import FilterMode
    from hand_pose_refiner.hands import FrameHands
    from hand_pose_refiner.models import create_backend
    from hand_pose_refiner.models.following import DetectionSchedule, HandFollower

    torch.set_num_threads(1)
    count = round(args.seconds * 30)
    print("CPU ms per frame on one thread each (p50 / p95); camera rate needs each stage < 33 ms")
    print(f"{'size':9}  {'footage':14} {'detection':18} {'detector':>15} {'pose+filters':>15}  "
          f"{'sum p95':>7}  hands/frame")
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.split("x"))
        footage = {"gloved stills": gloved_frames(size, count), "bare clip": clip_frames(size, count)}
        for name, frames in footage.items():
            rgbs = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames]
            for label, config in cell_configs(args.config, args.deploy).items():
                detector, estimator = create_backend(replace(config, models=replace(config.models,
                                                                                    device="cpu")))
                net = getattr(detector, "net", None)
                if args.kept_heads and net is not None and net.kept_heads is None:
                    net.keep_heads()  # what a refined detector's second set of heads costs
                schedule = DetectionSchedule(detector)
                follower = HandFollower(estimator, config)
                filters = PoseFilterPipeline(config, FilterMode.ONLINE)
                detect_ms, pose_ms, hands = [], [], 0
                for index, rgb in enumerate(rgbs):
                    stamp = (index + 1) * PERIOD_NS
                    started = time.thread_time()
                    detections = schedule.detect(rgb)
                    detect_ms.append((time.thread_time() - started) * 1000)
                    started = time.thread_time()
                    needed = follower.needs_detections(stamp)
                    raw = follower.estimate(rgb, stamp, detections if needed else None)
                    list(filters.push(raw if raw is not None else FrameHands.empty(stamp, *rgb.shape[1::-1])))
                    pose_ms.append((time.thread_time() - started) * 1000)
                    hands += len(raw) if raw is not None else 0
                d, p = np.array(detect_ms[30:]), np.array(pose_ms[30:])  # after a second of warm-up
                print(f"{size_text:9}  {name:14} {label:18} "
                      f"{np.median(d):6.1f} / {np.percentile(d, 95):5.1f} "
                      f"{np.median(p):6.1f} / {np.percentile(p, 95):5.1f}  {np.percentile(d + p, 95):7.1f}  "
                      f"{hands / len(rgbs):.2f}", flush=True)


@dataclass
class HeldScore:
    stills: int = 0
    true_stills: int = 0
    false_stills: int = 0
    first_frames: list[int] | None = None


def held(args: argparse.Namespace) -> None:
    from hand_pose_refiner.api import HandPipeline

    judgements = load_judgements(JUDGEMENTS)
    names = stills(STILLS)
    print(f"stills: {args.half or 'all'}; each held {HOLD} frames at 30 Hz, one stream per view")
    print(f"{'detection':18} {'view':9} stills  true  false  true hand first out on frame (1..{HOLD}): "
          "counts")
    for label, config in cell_configs(args.config, args.deploy).items():
        pipeline = HandPipeline(config, device="cpu")
        for view in VIEWS:
            chosen = [(i, name) for i, name in enumerate(names[view])
                      if not args.half or split_of(i) == args.half]
            frames = []
            for still, (_, name) in enumerate(chosen):
                rgb = cv2.cvtColor(cv2.imread(str(STILLS / view / "gloved" / name)), cv2.COLOR_BGR2RGB)
                frames += [((still * HOLD + k + 1) * PERIOD_NS, rgb) for k in range(HOLD)]
            score = HeldScore(first_frames=[])
            verdicts: dict[int, list[str]] = {}
            for hands in pipeline.track_rgb(iter(frames)):
                index = round(hands.stamp_ns / PERIOD_NS) - 1
                still, frame = divmod(index, HOLD)
                regions = judgements[f"{view}/gloved/{chosen[still][1]}"]
                labels = [judge(box.tolist(), regions) for box in boxes_from_keypoints(hands.keypoints)] \
                    if len(hands) else []
                verdicts.setdefault(still, [])
                if "hand" in labels and "hand" not in verdicts[still]:
                    score.first_frames.append(frame + 1)  # type: ignore[union-attr]
                verdicts[still] += labels
            score.stills = len(chosen)
            score.true_stills = sum("hand" in v for v in verdicts.values())
            score.false_stills = sum("not_hand" in v for v in verdicts.values())
            counts = np.bincount(np.asarray(score.first_frames, int), minlength=HOLD + 1)[1:]
            print(f"{label:18} {view:9} {score.stills:6} {score.true_stills:5} {score.false_stills:6}  "
                  f"{' '.join(str(c) for c in counts)}", flush=True)
    print("bare-hand clips upscaled to 1280x720: frame on which the first hand comes out")
    clips = sorted(CLIPS.glob("*.webm"))
    for label, config in cell_configs(args.config, args.deploy).items():
        pipeline = HandPipeline(config, device="cpu")
        firsts = []
        for clip in clips:
            from hand_pose_refiner.ros.probe import read_clip

            frames, _ = read_clip(clip, args.clip_frames)
            stream = ((i * PERIOD_NS + PERIOD_NS, cv2.cvtColor(cv2.resize(f, (1280, 720)), cv2.COLOR_BGR2RGB))
                      for i, f in enumerate(frames))
            first = next((round(h.stamp_ns / PERIOD_NS) for h in pipeline.track_rgb(stream) if len(h)), None)
            firsts.append(f"{clip.stem} {first}")
        print(f"{label:18} " + ", ".join(firsts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["graph", "held", "cost"])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "glovebox.yaml")
    parser.add_argument("--deploy", type=Path, help="a main-job run's deploy.yaml: its checkpoints")
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--half", choices=["", "tuning", "test"], default="")
    parser.add_argument("--clip-frames", type=int, default=60)
    parser.add_argument("--kept-heads", action="store_true",
                        help="cost: a detector without kept heads (the general model) also runs a "
                             "kept copy of its heads, as a refined one does")
    args = parser.parse_args()
    {"graph": graph, "held": held, "cost": stage_costs}[args.part](args)


if __name__ == "__main__":
    main()
