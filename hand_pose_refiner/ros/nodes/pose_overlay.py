"""``pose_overlay`` (optional): the camera image with skeletons and track ids drawn, for RViz/Foxglove."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image

from hand_pose_refiner.config import Config
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.msg import HandPoseArray
from hand_pose_refiner.ros.conversions import message_to_frame_hands, stamp_ns_of
from hand_pose_refiner.ros.images import numpy_to_image
from hand_pose_refiner.ros.interfaces import rclpy_message_types
from hand_pose_refiner.ros.nodes.base import HandPoseNode, main_for
from hand_pose_refiner.ros.nodes.detector import DecodedImage, ImageInput
from hand_pose_refiner.ros.pairing import StampPairing
from hand_pose_refiner.ros.qos import hands_qos, image_qos
from hand_pose_refiner.skeleton import BONES, INTERPOLATED, OBSERVED

_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def draw_hands(rgb: np.ndarray, hands: FrameHands) -> np.ndarray:
    """An RGB copy with each hand's bones, keypoints (interpolated hollow) and track id drawn."""
    canvas = rgb.copy()
    scale = max(1, round(max(canvas.shape[:2]) / 640))
    for index in range(len(hands)):
        track_id = int(hands.track_ids[index])
        colour = _COLOURS[track_id % len(_COLOURS)] if track_id >= 0 else (200, 200, 200)
        points, states = hands.keypoints[index], hands.keypoint_states[index]
        usable = (states <= INTERPOLATED) & np.isfinite(points).all(axis=-1)
        for parent, child in BONES:
            if usable[parent] and usable[child]:
                cv2.line(canvas, tuple(np.round(points[parent]).astype(int)),
                         tuple(np.round(points[child]).astype(int)), colour, 2 * scale, cv2.LINE_AA)
        for point, state, ok in zip(points, states, usable, strict=True):
            if ok:
                cv2.circle(canvas, tuple(np.round(point).astype(int)), 3 * scale, colour,
                           -1 if state == OBSERVED else scale, cv2.LINE_AA)
        if usable.any():
            x, y = np.round(points[usable].min(axis=0)).astype(int)
            cv2.putText(canvas, f"#{track_id}", (int(x), max(int(y) - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale, colour, scale, cv2.LINE_AA)
    return canvas


class PoseOverlayNode(HandPoseNode):
    """Pairs each image with its filtered hands (by stamp) and publishes the drawing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("pose_overlay", **kwargs)
        self._input: ImageInput | None = None
        self._hands_subscription: Any = None

    def setup(self, config: Config) -> None:
        self.types = rclpy_message_types()
        # Filtered hands arrive up to online_delay_s after their image: keep enough images.
        self.pairing: StampPairing[Any, Any] = StampPairing(config.qos.pairing_queue_size, self.stats,
                                                            "image", "hands")
        self.publisher = self.create_lifecycle_publisher(Image, config.topics.overlay, image_qos(config.qos))

    def start(self, config: Config) -> None:
        self._input = ImageInput(self, config, self._on_image)
        self._hands_subscription = self.create_subscription(HandPoseArray, config.topics.poses,
                                                            self._on_hands, hands_qos(config.qos))

    def stop(self) -> None:
        if self._input is not None:
            self._input.destroy()
            self._input = None
        if self._hands_subscription is not None:
            self.destroy_subscription(self._hands_subscription)
            self._hands_subscription = None

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
