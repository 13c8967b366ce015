"""Helpers for node-graph tests: publish real clips as camera images, collect every stage."""

from __future__ import annotations

import array
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
STAGES = {"detections": "hand_detections", "raw": "hand_poses/raw", "spatial": "hand_poses/spatial",
          "poses": "hand_poses"}


def read_clip(path: Path, max_frames: int) -> tuple[list[np.ndarray], float]:
    """BGR frames of a clip and its frame rate."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def image_message(frame: np.ndarray, stamp_ns: int, types: Any, encoding: str = "bgr8") -> Any:
    """A sensor_msgs/Image, filled the fast way (array.array)."""
    message = types.Image()
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.header.frame_id = "camera_optical_frame"
    message.height, message.width = frame.shape[:2]
    message.encoding = encoding
    message.step = frame.shape[1] * (frame.shape[2] if frame.ndim == 3 else 1) * frame.itemsize
    message.data = array.array("B", np.ascontiguousarray(frame).tobytes())
    return message


class GraphProbe:
    """A test node that publishes images and records what each stage publishes, with arrival times
    (wall clock, ns: compared with image stamps taken from the same clock, they give latency)."""

    def __init__(self, rclpy: Any, types: Any, namespace: str = "") -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"graph_probe_{id(self)}", namespace=namespace or None,
                                      context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        image_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.image_publisher = self.node.create_publisher(types.Image, "image_raw", image_qos)
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        message_types = {"detections": types.HandDetectionArray}
        for stage, topic in STAGES.items():
            self.node.create_subscription(message_types.get(stage, types.HandPoseArray), topic,
                                          lambda message, s=stage: self.received[s].append(
                                              (time.time_ns(), message)), reliable)
        self.rclpy = rclpy

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for_graph(self, image_subscribers: int, timeout: float = 90.0) -> None:
        """Until the graph's nodes are active (subscribed to images and publishing every stage)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # every stage publishes, and each stage's output reaches the next stage and this probe
            stages_ready = all(self.node.count_publishers(topic) > 0 for topic in STAGES.values()) and all(
                self.node.count_subscribers(topic) >= 2 for topic in list(STAGES.values())[:-1])
            if self.image_publisher.get_subscription_count() >= image_subscribers and stages_ready:
                self.spin_for(0.5)
                return
            self.spin_for(0.1)
        raise TimeoutError("the node graph did not come up")

    def publish_clip(self, frames: list[np.ndarray], fps: float, types: Any,
                     start_ns: int | None = None) -> list[int]:
        """Publish frames at the clip's rate; returns their stamps (wall clock if no start given)."""
        stamps, period = [], 1.0 / fps
        started = time.monotonic()
        for index, frame in enumerate(frames):
            stamp_ns = time.time_ns() if start_ns is None else start_ns + round(index * period * 1e9)
            self.image_publisher.publish(image_message(frame, stamp_ns, types))
            stamps.append(stamp_ns)
            target = started + (index + 1) * period
            while time.monotonic() < target:
                self.executor.spin_once(timeout_sec=max(0.0, min(0.005, target - time.monotonic())))
        return stamps

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def start_process(arguments: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *arguments], cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_processes(processes: list[subprocess.Popen]) -> list[str]:
    """Interrupt (as Ctrl-C does) and collect each process's output."""
    outputs = []
    for process in processes:
        process.send_signal(2)
    for process in processes:
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        outputs.append(output)
    return outputs


@contextmanager
def activity_node_probe(types: Any, parameters: dict[str, Any], depth: int
                        ) -> Iterator[tuple[Any, Any, list[Any]]]:
    """An active ``activity_recognizer`` with ``parameters`` and a probe node, on one executor, in a
    context of their own; yields ``(executor, HandPoseArray publisher, received HandActivity list)``
    once the node is subscribed. Reliable QoS of ``depth`` both ways, so nothing is dropped."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from hand_pose_refiner.ros.nodes.activity_recognizer import ActivityRecognizerNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ActivityRecognizerNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        probe = rclpy.create_node("activity_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(probe)
        node.trigger_configure()
        node.trigger_activate()
        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        publisher = probe.create_publisher(types.HandPoseArray, "hand_poses", reliable)
        received: list[Any] = []
        probe.create_subscription(types.HandActivity, "hand_activity", received.append, reliable)
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        yield executor, publisher, received
        node.destroy_node()
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=context)
