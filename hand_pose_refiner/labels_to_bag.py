"""Labelled COCO hand images -> a rosbag2 of images and ``HandPoseArray`` messages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.errors import ImageError, InputError
from hand_pose_refiner.images import read_bgr
from hand_pose_refiner.ros.bags import BagWriter, Storage, read_messages
from hand_pose_refiner.skeleton import KeypointState


@dataclass(frozen=True)
class LabelsToBagSummary:
    """What was written, and how many hand messages a fresh reader found in the bag."""

    images: int
    hands: int
    keypoints: int
    read_back: int


def labels_to_bag(annotations: Path, out: Path, images_dir: Path | None = None,
                  tip_first: bool = False, storage: Storage = "mcap",
                  image_topic: str = "/camera/image_raw", hands_topic: str = "/hand_poses",
                  compressed: bool = False, frame_period_s: float = 0.1,
                  frame_id: str = "camera_optical_frame") -> LabelsToBagSummary:
    """Write each image and its labelled hands at evenly spaced stamps, then read the bag back."""
    images = load_coco(annotations, images_dir=images_dir, tip_first=tip_first)
    hands_total = keypoints_total = 0
    with BagWriter(out, storage=storage) as writer:
        for index, item in enumerate(images):
            try:
                pixels = read_bgr(item.path)
            except InputError as exc:
                raise ImageError(f"cannot read image {item.path}") from exc
            if pixels.shape[:2] != (item.hands.image_height, item.hands.image_width):
                raise ImageError(f"{item.path} is {pixels.shape[1]}x{pixels.shape[0]}, the "
                                 f"annotation says {item.hands.image_width}x{item.hands.image_height}")
            stamp_ns = round(index * frame_period_s * 1e9)
            hands = replace(item.hands, stamp_ns=stamp_ns, frame_id=frame_id, model_name="labels")
            if compressed:
                writer.write_compressed_image(image_topic + "/compressed", pixels, stamp_ns, frame_id)
            else:
                writer.write_image(image_topic, pixels, "bgr8", stamp_ns, frame_id)
            writer.write_hands(hands_topic, hands)
            hands_total += len(hands)
            keypoints_total += int(np.sum(hands.keypoint_states == KeypointState.OBSERVED))
    read_back = sum(1 for _ in read_messages(out, [hands_topic]))
    return LabelsToBagSummary(len(images), hands_total, keypoints_total, read_back)
