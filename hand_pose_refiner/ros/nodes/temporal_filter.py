"""``temporal_filter``: spatially filtered hands in, tracked, filtered, smoothed hands out.

Runs the tracker and the temporal filter in online mode: each frame is published once a frame
``temporal_filter.online_delay_s`` newer has arrived (0: at once), with the input's stamp.
"""

from __future__ import annotations

import time
from typing import Any

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter
from hand_pose_refiner.filters.tracking import HandTracker
from hand_pose_refiner.msg import HandPoseArray
from hand_pose_refiner.ros.conversions import frame_hands_to_message, message_to_frame_hands
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.qos import hands_qos


class TemporalFilterNode(HandPoseNode):
    """Tracks hands and filters each track over time (online mode)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("temporal_filter", **kwargs)

    def setup(self, config: Config) -> None:
        self.monitor.algorithm_stats = RejectionStats("temporal_filter", logger=None)
        self.tracker = HandTracker(config.tracking, self.monitor.algorithm_stats)
        self.filter = TemporalFilter(config.temporal_filter, config.tracking, FilterMode.ONLINE,
                                     self.monitor.algorithm_stats)
        self.types = rclpy_message_types()
        self.publisher = self.create_lifecycle_publisher(HandPoseArray, config.topics.poses,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self.subscribe(HandPoseArray, config.topics.spatial_poses, self._on_hands, hands_qos(config.qos))

    def _on_hands(self, message: Any) -> None:
        self.monitor.received()
        started = time.perf_counter()
        for frame in self.filter.push(self.tracker.update(message_to_frame_hands(message))):
            self.publisher.publish(frame_hands_to_message(frame, self.types))
            self.monitor.published(time.perf_counter() - started)


main = main_for(TemporalFilterNode)


if __name__ == "__main__":
    main()
