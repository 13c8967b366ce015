"""Quality-of-service profiles: camera images as sensor data, hands and activities reliable."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from hand_pose_refiner.config import QosConfig


def image_qos(config: QosConfig) -> QoSProfile:
    """Images: best effort by default (a late frame is worth nothing), shallow history."""
    reliability = (ReliabilityPolicy.RELIABLE if config.image_reliability == "reliable"
                   else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.image_depth,
                      reliability=reliability, durability=DurabilityPolicy.VOLATILE)


def hands_qos(config: QosConfig) -> QoSProfile:
    """Detections, hand poses and activities: reliable, so controllers never miss one."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.hands_depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
