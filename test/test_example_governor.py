"""The example cobot-side subscriber reacts to HandActivity messages."""

from __future__ import annotations

import sys
import time

from support import REPO, import_or_skip_ros


def test_speed_drops_while_a_hand_reaches_and_recovers_when_idle(rclpy_types):
    rclpy = import_or_skip_ros("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32

    sys.path.insert(0, str(REPO / "examples"))
    from cobot_speed_governor import CobotSpeedGovernor

    rclpy.init()
    try:
        governor = CobotSpeedGovernor()
        probe = rclpy.create_node("governor_probe")
        executor = SingleThreadedExecutor()
        executor.add_node(governor)
        executor.add_node(probe)
        publisher = probe.create_publisher(rclpy_types.HandActivity, "hand_activity", 10)
        speeds = []
        probe.create_subscription(Float32, "speed_scaling", lambda m: speeds.append(m.data), 10)

        def send(label: str, confidence: float = 0.9, seconds: float = 0.3) -> float:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                publisher.publish(rclpy_types.HandActivity(track_id=3, label=label, confidence=confidence))
                executor.spin_once(timeout_sec=0.02)
            return speeds[-1]

        assert send("reach") == 0.25
        assert send("screw") == 0.5
        assert send("idle") == 1.0
        assert send("idle", confidence=0.3) == 0.5  # unsure: cautious
        governor.destroy_node()
        probe.destroy_node()
    finally:
        rclpy.shutdown()
