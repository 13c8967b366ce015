"""``hand_pose_estimator``: image + detections of the same stamp in, raw ``HandPoseArray`` out.

With ``models.landmark_tracking`` (and a backend that can), the node follows the hands of the
previous frame as MediaPipe's video mode does (the rule of
:class:`~hand_pose_refiner.models.following.HandFollower`, which the offline tools run too): while
``spatial_filter.max_hands`` hands are followed, a new image is processed at once from the
previous landmarks, without waiting for its detections (which are then not needed). That takes
the detector off the latency path; a hand that is lost, or room for another hand, brings the
detections back in.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from hand_pose_refiner.config import Config
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import HandFollower
from hand_pose_refiner.msg import HandDetectionArray, HandPoseArray
from hand_pose_refiner.ros.conversions import (
    frame_hands_to_message,
    message_to_detections,
    stamp_ns_of,
)
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, LatestWorker, main_for
from hand_pose_refiner.ros.nodes.detector import DecodedImage, ImageInput
from hand_pose_refiner.ros.pairing import StampPairing
from hand_pose_refiner.ros.qos import hands_qos


class HandPoseEstimatorNode(HandPoseNode):
    """Estimates the 21 keypoints of every detected (or followed) hand."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hand_pose_estimator", **kwargs)
        self._worker: LatestWorker[tuple[DecodedImage, Any]]  # made by start()
        self._follower: HandFollower  # made by setup(); its hands are written by the worker thread
        self._followed_stamps: deque[int] = deque(maxlen=256)
        self._last_published_ns = -1  # worker thread only

    def setup(self, config: Config) -> None:
        _, self.estimator = create_backend(config)
        self.estimator.warm_up()
        self.types = rclpy_message_types()
        self.pairing: StampPairing[Any, Any] = StampPairing(config.qos.pairing_queue_size, self.stats)
        self.publisher = self.create_lifecycle_publisher(HandPoseArray, config.topics.raw_poses,
                                                         hands_qos(config.qos))
        self._follower = HandFollower(self.estimator, config)

    def start(self, config: Config) -> None:
        self._follower.reset()
        self._last_published_ns = -1
        self._worker = self.start_worker(self._process)
        ImageInput(self, config, self._on_image)
        self.subscribe(HandDetectionArray, config.topics.detections, self._on_detections,
                       hands_qos(config.qos))

    def _on_image(self, image: DecodedImage) -> None:
        if not self._follower.needs_detections(image.stamp_ns):
            self._followed_stamps.append(image.stamp_ns)
            self._worker.submit((image, None))
            return
        pair = self.pairing.add_first(image.stamp_ns, image)
        if pair is not None:
            self._worker.submit(pair)

    def _on_detections(self, message: Any) -> None:
        stamp_ns = stamp_ns_of(message.header.stamp)
        if stamp_ns in self._followed_stamps:
            return  # that frame was processed from the followed hands already
        pair = self.pairing.add_second(stamp_ns, message)
        if pair is not None:
            self._worker.submit(pair)

    def _process(self, pair: tuple[DecodedImage, Any]) -> None:
        started = time.perf_counter()
        image, detections_message = pair
        if image.stamp_ns <= self._last_published_ns:
            # A frame that waited for its detections while a later, followed frame went out:
            # publishing it now would put the topic out of order.
            self.drop("older_than_published", "a later frame was published while this one waited")
            return
        detections = message_to_detections(detections_message) if detections_message is not None else None
        hands = self._follower.estimate(image.rgb, image.stamp_ns, detections)
        if hands is None:  # followed hands went stale while this frame waited: nothing to crop
            self.drop("nothing_to_follow", "no detections and no recent hands for this frame")
            return
        hands.frame_id = image.frame_id
        self._last_published_ns = image.stamp_ns
        self.publisher.publish(frame_hands_to_message(hands, self.types))
        self.monitor.published(time.perf_counter() - started)


main = main_for(HandPoseEstimatorNode)


if __name__ == "__main__":
    main()
