"""``hand_detector``: camera images in, hand detections out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import ImageError, ImageSizeError
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.images import to_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import DetectionSchedule, HandFollower
from hand_pose_refiner.msg import HandDetectionArray, HandPoseArray
from hand_pose_refiner.ros.conversions import detections_to_message, stamp_ns_of
from hand_pose_refiner.ros.images import compressed_to_numpy, image_to_numpy
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.qos import hands_qos, image_qos


def decode_image_message(message: Any) -> tuple[Any, int]:
    """RGB pixels and stamp of an Image or CompressedImage; raises ImageError on bad input."""
    if isinstance(message, CompressedImage):
        pixels = compressed_to_numpy(message)
        encoding = "mono8" if pixels.ndim == 2 else ("bgra8" if pixels.shape[2] == 4 else "bgr8")
    else:
        pixels, encoding = image_to_numpy(message)
    if pixels.size == 0:
        raise ImageSizeError(f"empty image ({message.width if hasattr(message, 'width') else 0}x"
                         f"{message.height if hasattr(message, 'height') else 0})")
    return to_rgb(pixels, encoding), stamp_ns_of(message.header.stamp)


@dataclass(frozen=True)
class DecodedImage:
    """A received camera image, decoded and checked: RGB pixels, stamp and optical frame."""

    rgb: np.ndarray
    stamp_ns: int
    frame_id: str


class ImageInput:
    """The image subscription every image-consuming node shares.

    Decodes and checks each image in the subscription callback (cheap next to a model), so bad
    input is counted under its own reason however busy the node is, and hands the callback a
    :class:`DecodedImage`.
    """

    def __init__(self, node: HandPoseNode, config: Config, callback: Any) -> None:
        self._node = node
        self._callback = callback
        self._last_stamp_ns: int | None = None
        topic = config.topics.image
        message_type: type = Image
        if config.topics.compressed_image:
            topic, message_type = topic + "/compressed", CompressedImage
        node.subscribe(message_type, topic, self._on_image, image_qos(config.qos))

    def _on_image(self, message: Any) -> None:
        self._node.monitor.received()
        stamp_ns = stamp_ns_of(message.header.stamp)
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            self._node.drop("stamp_not_increasing",
                            f"image stamp {stamp_ns} ns after {self._last_stamp_ns} ns")
            return
        try:
            rgb, _ = decode_image_message(message)
        except ImageError as exc:
            self._node.drop(type(exc).__name__, str(exc))
            return
        self._last_stamp_ns = stamp_ns
        self._callback(DecodedImage(rgb, stamp_ns, message.header.frame_id))


class HandDetectorNode(HandPoseNode):
    """Runs the configured hand detector on every frame it can keep up with (whole frame, and
    tiles as ``mediapipe.detector_tiles_per_frame`` schedules them: :class:`DetectionSchedule`).

    With landmark tracking, a frame is not searched while the pose estimator's last output
    (``topics.raw_poses``) followed ``spatial_filter.max_hands`` hands: the estimator needs no
    detections then (:meth:`HandFollower.needs_detections_after`, MediaPipe's video-mode rule),
    and the cores go to the pose estimator. Such frames are counted as ``hands_followed``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hand_detector", **kwargs)
        self._followed: tuple[int, int] | None = None  # (stamp_ns, hands) of the last raw poses

    def setup(self, config: Config) -> None:
        self.detector, estimator = create_backend(config)
        self.detector.warm_up()
        self.schedule = DetectionSchedule(self.detector)
        self.follower = HandFollower(estimator, config)  # the rule only: its hands are never set
        self.skipped = RejectionStats("hand_detector", logger=None)
        self.monitor.algorithm_stats = self.skipped
        self.types = rclpy_message_types()
        self.publisher = self.create_lifecycle_publisher(HandDetectionArray, config.topics.detections,
                                                         hands_qos(config.qos))

    def start(self, config: Config) -> None:
        self.schedule.reset()
        self._followed = None
        ImageInput(self, config, self.start_worker(self._process).submit)
        if self.follower.enabled:
            self.subscribe(HandPoseArray, config.topics.raw_poses, self._on_raw_poses, hands_qos(config.qos))

    def _on_raw_poses(self, message: Any) -> None:
        self._followed = (stamp_ns_of(message.header.stamp), len(message.hands))

    def _needs_detections(self, stamp_ns: int) -> bool:
        followed = self._followed
        return followed is None or self.follower.needs_detections_after(*followed, stamp_ns)

    def _process(self, image: DecodedImage) -> None:
        if not self._needs_detections(image.stamp_ns):
            self.skipped.reject("hands_followed")
            return
        started = time.perf_counter()
        detections = self.schedule.detect(image.rgb)
        self.publisher.publish(detections_to_message(detections, image.stamp_ns, image.frame_id,
                                                     self.detector.name, self.types))
        self.monitor.published(time.perf_counter() - started)


main = main_for(HandDetectorNode)


if __name__ == "__main__":
    main()
