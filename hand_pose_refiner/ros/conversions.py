"""FrameHands <-> HandPoseArray messages, for rclpy and rosbags message classes alike."""

from __future__ import annotations

from typing import Any

import numpy as np

from hand_pose_refiner.hands import Detections, FrameHands
from hand_pose_refiner.ros.interfaces import MessageTypes
from hand_pose_refiner.skeleton import NUM_KEYPOINTS

NANOSECONDS_PER_SECOND = 1_000_000_000


def time_message(types: MessageTypes, stamp_ns: int) -> Any:
    """A ``builtin_interfaces/Time`` for an integer nanosecond stamp."""
    seconds, nanoseconds = divmod(int(stamp_ns), NANOSECONDS_PER_SECOND)
    return types.Time(sec=seconds, nanosec=nanoseconds)


def stamp_ns_of(time: Any) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time``."""
    return int(time.sec) * NANOSECONDS_PER_SECOND + int(time.nanosec)


def header_message(types: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header``."""
    return types.Header(stamp=time_message(types, stamp_ns), frame_id=frame_id)


def frame_hands_to_message(hands: FrameHands, types: MessageTypes) -> Any:
    """A ``HandPoseArray`` holding every hand of the frame (stamp, frame and model name shared)."""
    header = header_message(types, hands.stamp_ns, hands.frame_id)
    poses = []
    for i in range(len(hands)):
        box = hands.boxes[i]
        poses.append(types.HandPose(
            header=header,
            track_id=int(hands.track_ids[i]),
            handedness=int(hands.handedness[i]),
            handedness_score=float(hands.handedness_scores[i]),
            detection_score=float(hands.detection_scores[i]),
            box_x_min=float(box[0]), box_y_min=float(box[1]),
            box_x_max=float(box[2]), box_y_max=float(box[3]),
            keypoints_x=np.ascontiguousarray(hands.keypoints[i, :, 0]),
            keypoints_y=np.ascontiguousarray(hands.keypoints[i, :, 1]),
            keypoint_scores=hands.keypoint_scores[i].copy(),
            keypoint_states=hands.keypoint_states[i].copy(),
            model_name=hands.model_name,
        ))
    return types.HandPoseArray(header=header, image_width=hands.image_width,
                               image_height=hands.image_height, hands=poses)


def message_to_frame_hands(message: Any) -> FrameHands:
    """The hands of a ``HandPoseArray`` message (rclpy or rosbags).

    Stamp and frame come from the array's header; the model name from the first hand.
    """
    hands = list(message.hands)
    count = len(hands)
    keypoints = np.empty((count, NUM_KEYPOINTS, 2), np.float32)
    for i, hand in enumerate(hands):
        keypoints[i, :, 0] = hand.keypoints_x
        keypoints[i, :, 1] = hand.keypoints_y
    return FrameHands(
        stamp_ns=stamp_ns_of(message.header.stamp),
        image_width=int(message.image_width),
        image_height=int(message.image_height),
        keypoints=keypoints,
        keypoint_scores=np.array([h.keypoint_scores for h in hands], np.float32).reshape(
            count, NUM_KEYPOINTS),
        keypoint_states=np.array([h.keypoint_states for h in hands], np.uint8).reshape(
            count, NUM_KEYPOINTS),
        boxes=np.array([[h.box_x_min, h.box_y_min, h.box_x_max, h.box_y_max] for h in hands],
                       np.float32).reshape(count, 4),
        detection_scores=np.array([h.detection_score for h in hands], np.float32),
        handedness=np.array([h.handedness for h in hands], np.uint8),
        handedness_scores=np.array([h.handedness_score for h in hands], np.float32),
        track_ids=np.array([h.track_id for h in hands], np.int64),
        frame_id=str(message.header.frame_id),
        model_name=str(hands[0].model_name) if hands else "",
    )


def detections_to_message(detections: Detections, stamp_ns: int, frame_id: str, model_name: str,
                          types: MessageTypes) -> Any:
    """A ``HandDetectionArray`` of one image's detections."""
    items = []
    for box, score, keypoints in zip(detections.boxes, detections.scores, detections.keypoints, strict=True):
        items.append(types.HandDetection(
            box_x_min=float(box[0]), box_y_min=float(box[1]), box_x_max=float(box[2]),
            box_y_max=float(box[3]), score=float(score),
            keypoints_x=np.ascontiguousarray(keypoints[:, 0], np.float32),
            keypoints_y=np.ascontiguousarray(keypoints[:, 1], np.float32)))
    return types.HandDetectionArray(header=header_message(types, stamp_ns, frame_id),
                                    image_width=detections.image_width,
                                    image_height=detections.image_height, model_name=model_name,
                                    detections=items)


def message_to_detections(message: Any) -> Detections:
    """The detections of a ``HandDetectionArray`` (all must carry the same number of keypoints)."""
    items = list(message.detections)
    counts = {len(d.keypoints_x) for d in items} | {len(d.keypoints_y) for d in items}
    if len(counts) > 1:
        raise ValueError(f"detections carry different keypoint counts: {sorted(counts)}")
    keypoint_count = counts.pop() if counts else 0
    keypoints = np.array([np.column_stack([d.keypoints_x, d.keypoints_y]) for d in items],
                         np.float32).reshape(len(items), keypoint_count, 2)
    return Detections(
        boxes=np.array([[d.box_x_min, d.box_y_min, d.box_x_max, d.box_y_max] for d in items],
                       np.float32).reshape(-1, 4),
        scores=np.array([d.score for d in items], np.float32),
        keypoints=keypoints, image_width=int(message.image_width), image_height=int(message.image_height))
