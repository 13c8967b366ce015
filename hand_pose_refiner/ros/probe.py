"""A probe for measuring a running node graph: frames of a clip published as camera images, every
stage's output recorded with its arrival time.

:class:`GraphProbe` publishes ``sensor_msgs/Image`` on ``image_raw`` (stamped with the wall clock, or
at the clip's rate from a given start) and subscribes to each stage of the default graph
(:data:`STAGES`), so that the frames each stage delivers, the drops and the latency from image stamp
to arrival can be counted. :func:`start_process` and :func:`stop_processes` run the graph's nodes
(or the in-process runner) as processes and collect their output. rclpy is needed only to create a
probe.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_refiner.ros.conversions import stamp_ns_of

# Each stage's output topic, relative to the probe's namespace.
STAGES = {"detections": "hand_detections", "raw": "hand_poses/raw", "spatial": "hand_poses/spatial",
          "poses": "hand_poses"}


def read_clip(path: Path, max_frames: int) -> tuple[list[np.ndarray], float]:
    """BGR frames of a clip and its frame rate."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames: list[np.ndarray] = []
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
    """A node that publishes images and records what each stage publishes, with arrival times
    (wall clock, ns: compared with image stamps taken from the same clock, they give latency).

    ``rclpy`` is the rclpy module and ``types`` the message classes
    (:func:`hand_pose_refiner.ros.interfaces.rclpy_message_types`); the probe runs in an rclpy
    context of its own, shut down by :meth:`close`.
    """

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

    def timed_run(self, frames: list[np.ndarray], fps: float, types: Any,
                  warm_up: int = 30) -> tuple[list[int], dict[int, int]]:
        """Warm the graph up on the first ``warm_up`` frames, then publish ``frames`` at ``fps``
        with wall-clock stamps and listen 2 s more. Returns the stamps sent, and the arrival time
        (wall clock, ns) of the final ``hand_poses`` message of each stamp that came back."""
        self.publish_clip(frames[:warm_up], fps, types)
        self.spin_for(2.0)
        self.received.clear()
        stamps = self.publish_clip(frames, fps, types)
        self.spin_for(2.0)
        sent = set(stamps)
        arrivals = {}
        for arrived_ns, message in self.received["poses"]:
            stamp = stamp_ns_of(message.header.stamp)
            if stamp in sent:
                arrivals[stamp] = int(arrived_ns)
        return stamps, arrivals

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def start_process(arguments: list[str], env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.Popen:
    """``python ARGUMENTS`` (this interpreter) in ``cwd``, with ``env`` added to this environment;
    its output (stderr included) is collected by :func:`stop_processes`."""
    return subprocess.Popen([sys.executable, *arguments], cwd=cwd, env={**os.environ, **(env or {})},
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
