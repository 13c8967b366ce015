"""Access to the generated ROS 2 message classes, with a clear error when they are missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hand_pose_refiner.errors import InterfacesUnavailableError

_HOW_TO_BUILD = (
    "build them first: on a ROS 2 cell run `colcon build` and source install/setup.bash; "
    "without a ROS install run `bash scripts/setup.sh` and use .venv/bin/python"
)


@dataclass(frozen=True)
class MessageTypes:
    """The message classes a conversion needs, from rclpy or from a rosbags typestore.

    Both kinds accept every field as a keyword argument and expose fields as attributes, so one
    conversion code serves the live nodes (rclpy) and the offline tools (rosbags).
    """

    HandPose: Any
    HandPoseArray: Any
    HandActivity: Any
    Header: Any
    Time: Any
    Image: Any
    CompressedImage: Any
    HandDetection: Any
    HandDetectionArray: Any


def rclpy_message_types() -> MessageTypes:
    """The rclpy message classes; raises :class:`InterfacesUnavailableError` if not built."""
    try:
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Header

        from hand_pose_refiner.msg import (
            HandActivity,
            HandDetection,
            HandDetectionArray,
            HandPose,
            HandPoseArray,
        )
    except ImportError as exc:
        raise InterfacesUnavailableError(
            f"the ROS 2 message types cannot be imported ({exc}); {_HOW_TO_BUILD}"
        ) from exc
    return MessageTypes(HandPose, HandPoseArray, HandActivity, Header, Time, Image, CompressedImage,
                        HandDetection, HandDetectionArray)
