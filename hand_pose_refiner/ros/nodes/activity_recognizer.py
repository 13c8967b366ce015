"""``activity_recognizer``: tracked hands in, one ``HandActivity`` per track out.

Publishes each track's newest decision at most ``activity.publish_rate_hz`` times per second.
Needs a trained model (``activity.checkpoint``, see ``hand-pose-refiner train-activity``);
configuring without one fails with a message saying so.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.recognizer import ActivityRecognizer, ActivityResult
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.msg import HandActivity, HandPoseArray
from hand_pose_refiner.ros.conversions import header_message, message_to_frame_hands, time_message
from hand_pose_refiner.ros.interfaces import MessageTypes, rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.qos import hands_qos


def activity_message(result: ActivityResult, frame_id: str, types: MessageTypes) -> Any:
    """A ``HandActivity`` for one recogniser decision."""
    return types.HandActivity(
        header=header_message(types, result.window_end_ns, frame_id), track_id=int(result.track_id),
        label=result.label, confidence=float(result.confidence), class_names=list(result.class_names),
        class_scores=np.asarray(result.scores, np.float32).tolist(),
        window_start=time_message(types, result.window_start_ns),
        window_end=time_message(types, result.window_end_ns))


class ActivityRecognizerNode(HandPoseNode):
    """Classifies each track's recent poses and publishes the activity."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("activity_recognizer", **kwargs)
        self._last_published_ns: dict[int, int] = {}

    def setup(self, config: Config) -> None:
        if not config.activity.checkpoint:
            raise ConfigError("activity.checkpoint is empty: train a model with "
                              "`hand-pose-refiner train-activity` and set its path")
        model = ActivityModel.load(config.activity.checkpoint, config.activity)
        self.recognizer = ActivityRecognizer(config.activity, model)
        self.monitor.algorithm_stats = self.recognizer.stats
        self.types = rclpy_message_types()
        self._min_interval_ns = round(1e9 / config.activity.publish_rate_hz)
        self.publisher = self.create_lifecycle_publisher(HandActivity, config.topics.activity,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self.subscribe(HandPoseArray, config.topics.poses, self._on_hands, hands_qos(config.qos))

    def _on_hands(self, message: Any) -> None:
        self.monitor.received()
        started = time.perf_counter()
        for result in self.recognizer.push(message_to_frame_hands(message)):
            last = self._last_published_ns.get(result.track_id)
            if last is not None and result.window_end_ns - last < self._min_interval_ns:
                continue
            self._last_published_ns[result.track_id] = result.window_end_ns
            self.publisher.publish(activity_message(result, message.header.frame_id, self.types))
            self.monitor.published(time.perf_counter() - started)


def main() -> None:
    """Run the node on its own. One torch thread: a window is tiny, and more threads only
    contend with the other nodes for the cores (bench/bench_activity.py)."""
    import torch

    torch.set_num_threads(1)
    main_for(ActivityRecognizerNode)()


if __name__ == "__main__":
    main()
