"""The default graph with its activity_recognizer: what the extra node costs at start and per pose.

1. Start-up: every node of the default graph (``hand-pose-refiner run`` with no ``--nodes``) is
   created, configured and activated in one process, in the runner's order, as ``run`` does; prints
   the seconds of each node and the total with and without activity_recognizer.
   Goal: the activity node adds well under a second. Also the activity node as its own process,
   as the launch file starts it: seconds from the command to its "active" log line.
2. Per pose: the activity node's whole callback (HandPoseArray to FrameHands, the packaged reach
   model's streamed step, HandActivity published) on real reach-to-grasp recordings, fed as the
   temporal_filter node publishes them; one torch thread, as the node's ``main`` sets.
   Goal: < 2 ms per pose (a 30 Hz camera leaves 33 ms per frame for the whole graph).

    .venv/bin/python bench/bench_activity_default.py [--data ../shared/data/hand_actions/rtg_object_size]
                                                     [--recordings 8]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np

from hand_pose_refiner.activity.rtg_dataset import load_rtg_dataset
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH
from hand_pose_refiner.ros.runner import node_class, share_cores_between_models

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hand_actions" / "rtg_object_size"


def start_default_graph(context: object) -> dict[str, float]:
    """Seconds to create, configure and activate each node of the default graph, in order."""
    from rclpy.lifecycle import TransitionCallbackReturn

    seconds, nodes = {}, []
    share_cores_between_models(DEFAULT_GRAPH)
    for name in DEFAULT_GRAPH:
        started = time.perf_counter()
        node = node_class(name)(context=context)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, name
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS, name
        seconds[name] = time.perf_counter() - started
        nodes.append(node)
    for node in nodes:
        node.destroy_node()
    return seconds


def activity_process_start_s() -> float:
    """Seconds from starting the activity_recognizer executable to its node being active."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "hand_pose_refiner.ros.nodes.activity_recognizer", "--ros-args",
               "-p", "autostart:=true"]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "]: active" in line:
                return time.perf_counter() - started
        raise RuntimeError(f"activity_recognizer exited with {process.wait()} before it was active")
    finally:
        process.send_signal(2)
        process.communicate(timeout=20)


def filtered_recordings(data: Path, count: int) -> list[list]:
    """``count`` real recordings spread over the participants, as the temporal_filter publishes them."""
    sequences = load_rtg_dataset(data)
    chosen = sequences[:: max(1, len(sequences) // count)][:count]
    recordings = []
    for sequence in chosen:
        pipeline = PoseFilterPipeline(Config(), FilterMode.ONLINE)
        recordings.append([out for _, frame in sequence.frames() for out in pipeline.push(frame)])
    return recordings


def time_activity_callback(context: object, recordings: list[list]) -> np.ndarray:
    """Milliseconds of the activity node's callback per HandPoseArray (one hand each)."""
    import torch

    from hand_pose_refiner.ros.conversions import frame_hands_to_message
    from hand_pose_refiner.ros.interfaces import rclpy_message_types
    from hand_pose_refiner.ros.nodes.activity_recognizer import ActivityRecognizerNode

    torch.set_num_threads(1)
    types = rclpy_message_types()
    node = ActivityRecognizerNode(context=context)
    node.trigger_configure()
    node.trigger_activate()
    times = []
    for frames in recordings:
        node.recognizer.reset()
        for frame in frames:
            message = frame_hands_to_message(frame, types)
            started = time.perf_counter()
            node._on_hands(message)
            times.append((time.perf_counter() - started) * 1e3)
    node.destroy_node()
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--recordings", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        seconds = start_default_graph(context)
        for name, value in seconds.items():
            print(f"start-up {name}: {value:.2f} s")
        total = sum(seconds.values())
        print(f"start-up of the default graph: {total:.2f} s, without activity_recognizer "
              f"{total - seconds['activity_recognizer']:.2f} s")
        print(f"activity_recognizer as its own process: active {activity_process_start_s():.2f} s "
              "after its start")
        recordings = filtered_recordings(args.data, args.recordings)
        times = time_activity_callback(context, recordings)
        print(f"activity_recognizer callback per pose ({len(times)} poses of {len(recordings)} recordings): "
              f"median {np.median(times):.2f} ms, p95 {np.percentile(times, 95):.2f} ms, "
              f"max {times.max():.1f} ms (goal < 2 ms)")
    finally:
        rclpy.shutdown(context=context)


if __name__ == "__main__":
    main()
