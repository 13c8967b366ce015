"""``hand_pose_estimator``: image + detections of the same stamp in, raw ``HandPoseArray`` out."""

from __future__ import annotations

import time
from typing import Any

from hand_pose_refiner.config import Config
from hand_pose_refiner.models import create_backend
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
    """Estimates the 21 keypoints of every detected hand."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hand_pose_estimator", **kwargs)
        self._input: ImageInput | None = None
        self._worker: LatestWorker[tuple[Any, Any]] | None = None

    def setup(self, config: Config) -> None:
        _, self.estimator = create_backend(config.models)
        self.types = rclpy_message_types()
        self.pairing: StampPairing[Any, Any] = StampPairing(config.qos.pairing_queue_size, self.stats)
        self.publisher = self.create_lifecycle_publisher(HandPoseArray, config.topics.raw_poses,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self._worker = LatestWorker("hand_pose_estimator", self._process, self.stats, self.report_error)
        self._input = ImageInput(self, config, self._on_image)
        self.subscribe(HandDetectionArray, config.topics.detections, self._on_detections,
                       hands_qos(config.qos))

    def stop(self) -> None:
        super().stop()
        self._input = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _on_image(self, image: DecodedImage) -> None:
        pair = self.pairing.add_first(image.stamp_ns, image)
        if pair is not None and self._worker is not None:
            self._worker.submit(pair)

    def _on_detections(self, message: Any) -> None:
        pair = self.pairing.add_second(stamp_ns_of(message.header.stamp), message)
        if pair is not None and self._worker is not None:
            self._worker.submit(pair)

    def _process(self, pair: tuple[DecodedImage, Any]) -> None:
        started = time.perf_counter()
        image, detections_message = pair
        detections = message_to_detections(detections_message)
        (hands,) = self.estimator.estimate([image.rgb], [detections], [image.stamp_ns])
        hands.frame_id = image.frame_id
        self.publisher.publish(frame_hands_to_message(hands, self.types))
        self.monitor.published(time.perf_counter() - started)


main = main_for(HandPoseEstimatorNode)


if __name__ == "__main__":
    main()
