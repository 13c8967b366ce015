"""Two separate processes exchange HandPoseArray messages over DDS (loopback, own domain)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from helpers import frame_with_hands, open_hand, same_hands
from support import import_or_skip_ros

from hand_pose_refiner.ros.conversions import frame_hands_to_message, message_to_frame_hands

PEER = Path(__file__).with_name("ros_echo_peer.py")
COUNT = 20


def spin_until(executor, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_hand_pose_arrays_cross_a_process_boundary(rclpy_types):
    rclpy = import_or_skip_ros("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    peer = subprocess.Popen([sys.executable, str(PEER), "--count", str(COUNT)], env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("hand_pose_two_process_test", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        qos = QoSProfile(depth=COUNT, reliability=ReliabilityPolicy.RELIABLE)
        publisher = node.create_publisher(rclpy_types.HandPoseArray, "hands_in", qos)
        echoes = []
        subscription = node.create_subscription(rclpy_types.HandPoseArray, "hands_out", echoes.append, qos)
        # Both directions matched, not only known to the graph: a volatile echo sent before the
        # peer's writer matched this reader would be lost.
        matched = spin_until(executor, lambda: publisher.get_subscription_count() > 0
                             and subscription.get_publisher_count() > 0, timeout=30.0)
        assert matched, "the peer process was not discovered on loopback"

        sent = [frame_with_hands(*[open_hand((100 + 5 * i, 200), angle=0.1 * k) for k in range(i % 3)],
                                 stamp_ns=1_700_000_000_000_000_000 + i * 33_333_333, seed=i)
                for i in range(COUNT)]
        for hands in sent:
            publisher.publish(frame_hands_to_message(hands, rclpy_types))
        assert spin_until(executor, lambda: len(echoes) == COUNT, timeout=30.0), \
            f"received {len(echoes)} of {COUNT} echoes"
    finally:
        rclpy.shutdown(context=context)
        output, _ = peer.communicate(timeout=30)
    assert peer.returncode == 0, output

    for original, echo in zip(sent, echoes, strict=True):
        back = message_to_frame_hands(echo)
        if len(original):
            assert back.model_name == "echo:" + original.model_name
            back.model_name = original.model_name
        assert same_hands(back, original), f"message at stamp {original.stamp_ns} changed in transit"
        assert back.keypoints.dtype == np.float32
