"""Overlay images in replay bags (``replay --bag --bag-overlay``).

Each frame's filtered hands drawn on its image (:func:`~hand_pose_refiner.drawing.draw_hands`,
as the live ``pose_overlay`` node draws them), stored as ``sensor_msgs/CompressedImage`` (JPEG,
to keep bags small) on the overlay topic of the live graph, at the frame's stamp: the bag plays
in Foxglove (``config/foxglove_layout.json``) with the skeletons on the video.
"""

from __future__ import annotations

import cv2
import numpy as np

from hand_pose_refiner.config import TopicsConfig
from hand_pose_refiner.drawing import draw_hands
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.ros.bags import BagWriter

OVERLAY_TOPIC = f"/{TopicsConfig().overlay}"


def write_overlay(writer: BagWriter, prefix: str, bgr: np.ndarray, hands: FrameHands) -> None:
    """One overlay image: ``hands`` drawn on the BGR frame, on ``<prefix>/hand_overlay``."""
    drawn = draw_hands(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), hands)
    writer.write_compressed_image(f"{prefix}{OVERLAY_TOPIC}", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR),
                                  hands.stamp_ns, hands.frame_id)
