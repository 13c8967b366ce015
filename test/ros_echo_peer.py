"""A separate ROS 2 process for the two-process test: echoes HandPoseArray messages back.

Every message received on ``hands_in`` is republished on ``hands_out`` with ``echo:`` prepended
to each hand's model name, so the test can tell an echo from its own message. Exits after
``count`` messages or ``timeout`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

import rclpy
from hand_pose_refiner.msg import HandPoseArray
from rclpy.qos import QoSProfile, ReliabilityPolicy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("hand_pose_echo_peer")
    qos = QoSProfile(depth=max(args.count, 1), reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(HandPoseArray, "hands_out", qos)
    received = 0

    def echo(message: HandPoseArray) -> None:
        nonlocal received
        # The test's reader may be known to this process before this writer has matched it; an
        # echo published before then would be dropped (volatile durability).
        matched_by = time.monotonic() + 10.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < matched_by:
            time.sleep(0.01)
        for hand in message.hands:
            hand.model_name = "echo:" + hand.model_name
        publisher.publish(message)
        received += 1

    node.create_subscription(HandPoseArray, "hands_in", echo, qos)
    print("peer ready", flush=True)
    deadline = time.monotonic() + args.timeout
    while received < args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    # Give the last echoes time to leave before the participant goes away.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if received == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
