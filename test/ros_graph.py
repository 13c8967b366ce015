"""An activity node with a probe node beside it, for tests of the activity recogniser's node.

The probe that measures a whole graph (publish a clip, record every stage) is
:mod:`hand_pose_refiner.ros.probe`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def activity_node_probe(types: Any, parameters: dict[str, Any], depth: int
                        ) -> Iterator[tuple[Any, Any, list[Any]]]:
    """An active ``activity_recognizer`` with ``parameters`` and a probe node, on one executor, in a
    context of their own; yields ``(executor, HandPoseArray publisher, received HandActivity list)``
    once the node is subscribed. Reliable QoS of ``depth`` both ways, so nothing is dropped."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from hand_pose_refiner.ros.nodes.activity_recognizer import ActivityRecognizerNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ActivityRecognizerNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        probe = rclpy.create_node("activity_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(probe)
        node.trigger_configure()
        node.trigger_activate()
        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        publisher = probe.create_publisher(types.HandPoseArray, "hand_poses", reliable)
        received: list[Any] = []
        probe.create_subscription(types.HandActivity, "hand_activity", received.append, reliable)
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        yield executor, publisher, received
        node.destroy_node()
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=context)
