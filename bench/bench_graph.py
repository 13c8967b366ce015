"""Sustained FPS and latency of the node graph at 640x480 and 30 Hz, in one process and as processes.

Publishes a real bare-hand clip (resized to 640x480, looped) as sensor_msgs/Image at 30 Hz with
wall-clock stamps, and measures, for the in-process runner (`hand-pose-refiner run`) and the
multi-process graph (one process per node), how many frames reach the final tracked
HandPoseArray topic and how long after their image stamp (p50/p95). Goals: 30 FPS with zero
drops in-process; p95 <= 50 ms.

    .venv/bin/python bench/bench_graph.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _checkout import REPO

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(120 + os.getpid() % 60))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config/fastdds_shm_localhost.xml"))

import cv2
import rclpy

from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH, NODE_EXECUTABLES, model_node_threads
from hand_pose_refiner.ros.probe import GraphProbe, read_clip, start_process, stop_processes

CLIP = REPO.parent / "shared" / "data" / "bare_hand_clips" / "hands1.webm"


def measure(label: str, commands: list[list[str]], frames: list[np.ndarray], types: object,
            env: dict[str, str] | None = None) -> None:
    processes = [start_process(command, env, cwd=REPO) for command in commands]
    probe = GraphProbe(rclpy, types)
    try:
        probe.wait_for_graph(image_subscribers=2, timeout=120.0)
        stamps, arrivals = probe.timed_run(frames, 30.0, types)
    finally:
        probe.close()
        stop_processes(processes)
    latency_ms = np.array([(arrivals[s] - s) / 1e6 for s in arrivals])
    duration_s = (stamps[-1] - stamps[0]) / 1e9
    with_hands = sum(len(m.hands) > 0 for _, m in probe.received["poses"])
    print(f"{label:28s} sent {len(stamps):4d}  delivered {len(arrivals):4d}  "
          f"({len(arrivals) / duration_s:5.1f} FPS, {len(stamps) - len(arrivals):4d} dropped)  "
          f"latency p50 {np.percentile(latency_ms, 50):6.1f} ms  "
          f"p95 {np.percentile(latency_ms, 95):6.1f} ms  "
          f"frames with hands {with_hands}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", nargs="+", default=["in-process", "multi-process"],
                        choices=["in-process", "multi-process"])
    parser.add_argument("--config", type=str, default=str(REPO / "config/assembly.yaml"),
                        help="the graph's parameter file (default: config/assembly.yaml)")
    parser.add_argument("--nodes", nargs="+", default=list(DEFAULT_GRAPH), choices=list(NODE_EXECUTABLES),
                        help="the graph's nodes (default: the launch file's default graph)")
    args = parser.parse_args()
    clip, _ = read_clip(CLIP, 300)
    clip = [cv2.resize(frame, (640, 480)) for frame in clip]
    count = round(args.seconds * 30)
    frames = [clip[i % len(clip)] for i in range(count)]
    types = rclpy_message_types()
    config = args.config
    if "in-process" in args.modes:
        runner = [["-m", "hand_pose_refiner.cli", "run", "--config", config, "--nodes", *args.nodes]]
        measure("in-process runner", runner, frames, types)
    node_commands = [["-m", f"hand_pose_refiner.ros.nodes.{NODE_EXECUTABLES[name]}", "--ros-args",
                      "--params-file", config, "-p", "autostart:=true"] for name in args.nodes]
    if "multi-process" in args.modes:
        # as launch/assembly.launch.py starts them: the cores shared between the model nodes
        env = {"OMP_NUM_THREADS": str(model_node_threads(args.nodes) or os.cpu_count() or 1)}
        measure("multi-process graph", node_commands, frames, types, env)


if __name__ == "__main__":
    main()
