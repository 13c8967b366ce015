"""``/diagnostics`` tells a node that is not working (unconfigured, inactive, without input) from one
that is, with real rclpy: a spatial_filter node fed real labelled hands."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from support import import_or_skip_ros

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import Config
from hand_pose_refiner.ros.conversions import frame_hands_to_message

DIAGNOSTICS_PERIOD_S = 0.2


class DiagnosticsProbe:
    """A spatial_filter node and a probe node on one executor: the probe publishes raw hands and
    keeps every status the filter node puts on /diagnostics."""

    def __init__(self, context: Any, types: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode
        from hand_pose_refiner.ros.qos import hands_qos

        self.node = SpatialFilterNode(context=context, parameter_overrides=[
            Parameter("diagnostics_period_s", value=DIAGNOSTICS_PERIOD_S)])
        self.probe = import_or_skip_ros("rclpy").create_node("diagnostics_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.statuses: list[Any] = []
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.hands_publisher = self.probe.create_publisher(types.HandPoseArray, "hand_poses/raw",
                                                           hands_qos(Config().qos))

    def _on_diagnostics(self, message: Any) -> None:
        self.statuses += [status for status in message.status if status.name == "/spatial_filter"]

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def next_status(self, timeout: float = 5.0) -> Any:
        """The first status the node publishes from now on."""
        self.statuses.clear()
        deadline = time.monotonic() + timeout
        while not self.statuses and time.monotonic() < deadline:
            self.spin_for(0.05)
        assert self.statuses, "no /diagnostics status from the node"
        return self.statuses[0]

    def close(self) -> None:
        self.node.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def diagnostics_probe(ros_context, rclpy_types):
    probe = DiagnosticsProbe(ros_context, rclpy_types)
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def labelled_frames(shared_data):
    """Real hands: the OneHand10K test images' labelled keypoints, one frame each."""
    images = load_coco(shared_data / "labelled_hands/onehand10k/test_onehand10k.json")
    assert len(images) == 4 and all(len(image.hands) for image in images)
    return [image.hands for image in images]


def values_of(status: Any) -> dict[str, str]:
    return {value.key: value.value for value in status.values}


def assert_level(status: Any, level: bytes, message: str) -> None:
    assert (status.level, status.message) == (level, message), values_of(status)


def test_diagnostics_report_warn_until_the_node_is_active_and_receiving(diagnostics_probe, labelled_frames,
                                                                          rclpy_types):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn

    probe = diagnostics_probe
    unconfigured = probe.next_status()
    assert_level(unconfigured, DiagnosticStatus.WARN, "unconfigured: not processing")
    assert values_of(unconfigured)["lifecycle_state"] == "unconfigured"

    assert probe.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert_level(probe.next_status(), DiagnosticStatus.WARN, "inactive: not processing")

    assert probe.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert_level(probe.next_status(), DiagnosticStatus.WARN, "active, no input in the last 5 s")

    # Publish the labelled frames over and over (stamps rising at 20 Hz) until the node has taken
    # some: the first ones can go out before the writer has matched the node's reader.
    deadline = time.monotonic() + 10.0
    index = 0
    while probe.node.monitor.inputs_total < len(labelled_frames) and time.monotonic() < deadline:
        hands = labelled_frames[index % len(labelled_frames)]
        probe.hands_publisher.publish(frame_hands_to_message(
            replace(hands, stamp_ns=1_700_000_000_000_000_000 + index * 50_000_000), rclpy_types))
        probe.spin_for(0.05)
        index += 1
    working = probe.next_status()
    assert_level(working, DiagnosticStatus.OK, "active")
    assert int(values_of(working)["inputs_total"]) >= len(labelled_frames)
    assert int(values_of(working)["outputs_total"]) == int(values_of(working)["inputs_total"])
    assert values_of(working)["lifecycle_state"] == "active"

    assert probe.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert_level(probe.next_status(), DiagnosticStatus.WARN, "inactive: not processing")
