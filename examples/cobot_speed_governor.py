"""Example cobot-side subscriber: slow the robot down while a worker's hand is busy near it.

Subscribes to ``hand_activity`` (hand_pose_refiner/msg/HandActivity) and publishes the speed
scaling a cobot controller should apply (std_msgs/Float32, 0..1) on ``speed_scaling``, e.g. to
feed a UR's speed slider or a MoveIt velocity scaling factor:

* a confident ``reach``, ``grasp`` or ``grasp_move`` (the hand moving into the shared zone, or
  carrying a part; ``grasp_move`` is a phase of the default reach model): 0.25;
* a confident ``screw``, ``insert`` or ``hold`` (working at the part): 0.5;
* ``idle``, or no activity for ``timeout_s`` (no hands seen): full speed.

The slowest of all tracks wins. Run it next to the graph:

    python examples/cobot_speed_governor.py --ros-args -p min_confidence:=0.6
"""

from __future__ import annotations

import sys
import time

import rclpy
from hand_pose_refiner.msg import HandActivity
from rclpy.node import Node
from std_msgs.msg import Float32

SPEED_FOR_ACTIVITY = {"reach": 0.25, "grasp": 0.25, "grasp_move": 0.25, "screw": 0.5, "insert": 0.5,
                      "hold": 0.5, "idle": 1.0}


class CobotSpeedGovernor(Node):
    """Turns hand activities into one speed scaling for the robot."""

    def __init__(self) -> None:
        super().__init__("cobot_speed_governor")
        self.min_confidence = float(self.declare_parameter("min_confidence", 0.6).value)
        self.timeout_s = float(self.declare_parameter("timeout_s", 0.5).value)
        self._latest: dict[int, tuple[float, float]] = {}  # track -> (speed, monotonic time)
        self.publisher = self.create_publisher(Float32, "speed_scaling", 10)
        self.create_subscription(HandActivity, "hand_activity", self._on_activity, 10)
        self.create_timer(0.05, self._publish)

    def _on_activity(self, message: HandActivity) -> None:
        # Unsure or unknown activities count as the most cautious known one.
        speed = SPEED_FOR_ACTIVITY.get(message.label, 0.25)
        if message.confidence < self.min_confidence:
            speed = min(speed, 0.5)
        self._latest[message.track_id] = (speed, time.monotonic())

    def _publish(self) -> None:
        now = time.monotonic()
        self._latest = {track: value for track, value in self._latest.items()
                        if now - value[1] <= self.timeout_s}
        speed = min((value[0] for value in self._latest.values()), default=1.0)
        self.publisher.publish(Float32(data=float(speed)))


def main() -> None:
    rclpy.init(args=sys.argv)
    node = CobotSpeedGovernor()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
