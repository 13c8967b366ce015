"""``pose_overlay`` (optional): the camera image with skeletons and track ids drawn, for RViz/Foxglove."""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import Image

from hand_pose_refiner.config import Config
from hand_pose_refiner.drawing import draw_hands
from hand_pose_refiner.msg import HandPoseArray
from hand_pose_refiner.ros.conversions import message_to_frame_hands, stamp_ns_of
from hand_pose_refiner.ros.images import numpy_to_image
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.nodes.detector import DecodedImage, ImageInput
from hand_pose_refiner.ros.pairing import StampPairing
from hand_pose_refiner.ros.qos import hands_qos, image_qos


class PoseOverlayNode(HandPoseNode):
    """Pairs each image with its filtered hands (by stamp) and publishes the drawing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pose_overlay", **kwargs)

    def setup(self, config: Config) -> None:
        self.types = rclpy_message_types()
        # Filtered hands arrive up to online_delay_s after their image: keep enough images.
        self.pairing: StampPairing[Any, Any] = StampPairing(config.qos.pairing_queue_size, self.stats,
                                                            "image", "hands")
        self.publisher = self.create_lifecycle_publisher(Image, config.topics.overlay, image_qos(config.qos))

    def start(self, config: Config) -> None:
        ImageInput(self, config, self._on_image)
        self.subscribe(HandPoseArray, config.topics.poses, self._on_hands, hands_qos(config.qos))

    def _on_image(self, image: DecodedImage) -> None:
        pair = self.pairing.add_first(image.stamp_ns, image)
        if pair is not None:
            self._draw(*pair)

    def _on_hands(self, message: Any) -> None:
        pair = self.pairing.add_second(stamp_ns_of(message.header.stamp), message)
        if pair is not None:
            self._draw(*pair)

    def _draw(self, image: DecodedImage, hands_message: Any) -> None:
        started = time.perf_counter()
        drawn = draw_hands(image.rgb, message_to_frame_hands(hands_message))
        self.publisher.publish(numpy_to_image(drawn, "rgb8", image.stamp_ns, image.frame_id, self.types))
        self.monitor.published(time.perf_counter() - started)


main = main_for(PoseOverlayNode)


if __name__ == "__main__":
    main()
