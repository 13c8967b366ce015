"""``activity_recognizer``: tracked hands in, one ``HandActivity`` per track out.

Two kinds of model, told apart by the checkpoint (``activity.checkpoint``):

* a window classifier (``hand-pose-refiner train-activity``): each track's newest window
  decision, at most ``activity.publish_rate_hz`` times per second;
* a reach recogniser (``hand-pose-refiner train-activity --rtg``): a decision per pose with the
  reach fields (onset event, time to grasp, grasp size). Rate-limited the same way, except that
  a message carrying an onset event is always published: a controller must not miss it.

An empty ``activity.checkpoint`` is the packaged reach recogniser
(:mod:`hand_pose_refiner.activity.packaged`), so the default graph publishes reach phases and
onsets with no setting at all.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hand_pose_refiner.activity.packaged import load_recognizer
from hand_pose_refiner.activity.reach import ReachRecognizer, ReachResult
from hand_pose_refiner.activity.reach_features import PHASE_NAMES
from hand_pose_refiner.activity.recognizer import ActivityRecognizer, ActivityResult
from hand_pose_refiner.config import Config
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
        window_end=time_message(types, result.window_end_ns), time_to_grasp=float("nan"))


def reach_message(result: ReachResult, size_names: tuple[str, ...], frame_id: str,
                  types: MessageTypes) -> Any:
    """A ``HandActivity`` for one reach decision (the phase is the label, the pose its window)."""
    return types.HandActivity(
        header=header_message(types, result.stamp_ns, frame_id), track_id=int(result.track_id),
        label=result.label, confidence=float(result.phase_scores[result.phase]),
        class_names=list(PHASE_NAMES), class_scores=np.asarray(result.phase_scores, np.float32).tolist(),
        window_start=time_message(types, result.stamp_ns), window_end=time_message(types, result.stamp_ns),
        onset=bool(result.onset), reach_start=time_message(types, result.reach_start_ns or 0),
        time_to_grasp=float(result.time_to_grasp_s), grasp_size=result.grasp_size,
        grasp_size_names=list(size_names),
        grasp_size_scores=np.asarray(result.size_scores, np.float32).tolist())


class ActivityRecognizerNode(HandPoseNode):
    """Classifies each track's recent poses and publishes the activity."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("activity_recognizer", **kwargs)
        self._last_published_ns: dict[int, int] = {}

    def setup(self, config: Config) -> None:
        self.recognizer: ActivityRecognizer | ReachRecognizer
        self.recognizer, checkpoint = load_recognizer(config.activity)
        self.get_logger().info(f"activity model: {checkpoint}")
        if isinstance(self.recognizer, ActivityRecognizer):
            self.monitor.algorithm_stats = self.recognizer.stats
        self.size_names = self.recognizer.size_names if isinstance(self.recognizer, ReachRecognizer) else ()
        self.types = rclpy_message_types()
        self._min_interval_ns = round(1e9 / config.activity.publish_rate_hz)
        self.publisher = self.create_lifecycle_publisher(HandActivity, config.topics.activity,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self.subscribe(HandPoseArray, config.topics.poses, self._on_hands, hands_qos(config.qos))

    def _on_hands(self, message: Any) -> None:
        self.monitor.received()
        started = time.perf_counter()
        frame_id = message.header.frame_id
        for result in self.recognizer.push(message_to_frame_hands(message)):
            if isinstance(result, ReachResult):
                if self._due(result.track_id, result.stamp_ns, force=result.onset):
                    self.publisher.publish(reach_message(result, self.size_names, frame_id,
                                                         self.types))
                    self.monitor.published(time.perf_counter() - started)
            elif self._due(result.track_id, result.window_end_ns):
                self.publisher.publish(activity_message(result, frame_id, self.types))
                self.monitor.published(time.perf_counter() - started)

    def _due(self, track_id: int, stamp_ns: int, force: bool = False) -> bool:
        """Whether a track's decision at ``stamp_ns`` may be published under the rate limit."""
        last = self._last_published_ns.get(track_id)
        if not force and last is not None and stamp_ns - last < self._min_interval_ns:
            return False
        self._last_published_ns[track_id] = stamp_ns
        return True


def main() -> None:
    """Run the node on its own. One torch thread: a window is tiny, and more threads only
    contend with the other nodes for the cores (bench/bench_activity.py)."""
    import torch

    torch.set_num_threads(1)
    main_for(ActivityRecognizerNode)()


if __name__ == "__main__":
    main()
