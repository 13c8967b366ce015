"""``spatial_filter``: raw ``HandPoseArray`` in, anatomically plausible hands out."""

from __future__ import annotations

import time
from typing import Any

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.spatial import SpatialFilter
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.msg import HandPoseArray
from hand_pose_refiner.ros.conversions import frame_hands_to_message, message_to_frame_hands
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.qos import hands_qos


class SpatialFilterNode(HandPoseNode):
    """Applies :class:`~hand_pose_refiner.filters.spatial.SpatialFilter` to every frame."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("spatial_filter", **kwargs)

    def setup(self, config: Config) -> None:
        self.monitor.algorithm_stats = RejectionStats("spatial_filter", logger=None)
        self.filter = SpatialFilter(config.spatial_filter, self.monitor.algorithm_stats)
        self.types = rclpy_message_types()
        self.publisher = self.create_lifecycle_publisher(HandPoseArray, config.topics.spatial_poses,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self.subscribe(HandPoseArray, config.topics.raw_poses, self._on_hands, hands_qos(config.qos))

    def _on_hands(self, message: Any) -> None:
        self.monitor.received()
        started = time.perf_counter()
        result = self.filter(message_to_frame_hands(message))
        self.publisher.publish(frame_hands_to_message(result.accepted, self.types))
        self.monitor.published(time.perf_counter() - started)


main = main_for(SpatialFilterNode)


if __name__ == "__main__":
    main()
