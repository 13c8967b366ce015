"""The node graph with real rclpy on loopback, fed the real bare-hand clips as camera images."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
from support import REPO, import_or_skip_ros, launch_file_namespace

from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH, NODE_EXECUTABLES, model_node_threads
from hand_pose_refiner.ros.probe import (
    STAGES,
    GraphProbe,
    image_message,
    read_clip,
    start_process,
    stop_processes,
)

CLIP_FRAMES = 45
START_NS = 1_700_000_000_000_000_000


def count_hands(message) -> int:
    return len(message.detections) if hasattr(message, "detections") else len(message.hands)


def stamp_of(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def warm_up(probe: GraphProbe, frames, fps, types) -> None:
    """A few frames first: connections between stages settle, models run their first pass."""
    probe.publish_clip(frames[:5], fps, types, START_NS - 10**11)
    probe.spin_for(2.0)


def assert_every_stage_delivers_hands(probe: GraphProbe, published: list[int]) -> None:
    stamps = {stage: [stamp_of(m) for _, m in probe.received[stage] if stamp_of(m) >= published[0]]
              for stage in STAGES}
    for stage in STAGES:
        assert stamps[stage], f"nothing arrived on {stage}"
        assert set(stamps[stage]) <= set(published), f"{stage} carries stamps that were never published"
        assert stamps[stage] == sorted(stamps[stage]), f"{stage} out of order"
    # every stage works on frames the previous stage delivered (the pose estimator also on frames
    # it follows from the previous landmarks, without waiting for their detections)
    assert set(stamps["spatial"]) == set(stamps["raw"])
    assert set(stamps["poses"]) <= set(stamps["spatial"])
    for stage in ("detections", "raw", "poses"):
        with_hands = sum(count_hands(m) > 0 for _, m in probe.received[stage])
        assert with_hands >= 3, f"{stage}: hands found in only {with_hands} frames of a bare-hand clip"
    final = probe.received["poses"][-1][1]
    assert final.image_width == 640 and final.image_height == 360


@pytest.fixture(scope="module")
def clip(shared_data):
    frames, fps = read_clip(shared_data / "bare_hand_clips" / "hands1.webm", CLIP_FRAMES)
    assert len(frames) == CLIP_FRAMES and frames[0].shape == (360, 640, 3)
    return frames, fps


@pytest.fixture
def in_process_graph(rclpy_types):
    rclpy = import_or_skip_ros("rclpy")
    process = start_process(["-m", "hand_pose_refiner.cli", "run", "--config",
                             str(REPO / "config/assembly.yaml")], cwd=REPO)
    probe = GraphProbe(rclpy, rclpy_types)
    try:
        probe.wait_for_graph(image_subscribers=2)
        yield probe, process
    finally:
        probe.close()
        output = stop_processes([process])[0]
        assert process.returncode == 0, output


def test_in_process_runner_delivers_every_stage(in_process_graph, clip, rclpy_types):
    probe, _ = in_process_graph
    warm_up(probe, *clip, rclpy_types)
    published = probe.publish_clip(*clip, rclpy_types, START_NS)
    probe.spin_for(4.0)
    assert_every_stage_delivers_hands(probe, published)


def test_multi_process_graph_delivers_every_stage(clip, rclpy_types):
    rclpy = import_or_skip_ros("rclpy")
    processes = [start_process(["-m", f"hand_pose_refiner.ros.nodes.{NODE_EXECUTABLES[name]}", "--ros-args",
                                "--params-file", str(REPO / "config/assembly.yaml"), "-p", "autostart:=true"],
                               cwd=REPO)
                 for name in DEFAULT_GRAPH]
    probe = GraphProbe(rclpy, rclpy_types)
    try:
        probe.wait_for_graph(image_subscribers=2, timeout=120.0)
        warm_up(probe, *clip, rclpy_types)
        published = probe.publish_clip(*clip, rclpy_types, START_NS)
        probe.spin_for(4.0)
        assert_every_stage_delivers_hands(probe, published)
    finally:
        probe.close()
        outputs = stop_processes(processes)
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output


def diagnostics_values(probe: GraphProbe, rclpy_types_module, node_name: str, timeout: float = 5.0) -> dict:
    """The newest /diagnostics key-values of one node."""
    from diagnostic_msgs.msg import DiagnosticArray

    latest: dict[str, dict[str, str]] = {}

    def on_diagnostics(message) -> None:
        for status in message.status:
            latest[status.name] = {kv.key: kv.value for kv in status.values}

    subscription = probe.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    deadline = time.monotonic() + timeout
    while node_name not in latest and time.monotonic() < deadline:
        probe.spin_for(0.1)
    probe.spin_for(1.2)  # one more report, after everything sent so far was handled
    probe.node.destroy_subscription(subscription)
    return latest.get(node_name, {})


def test_bad_images_are_counted_and_the_graph_keeps_going(in_process_graph, clip, rclpy_types):
    probe, process = in_process_graph
    frames, fps = clip
    stamp = START_NS + 10**12
    good = frames[0]

    def send(message) -> None:
        probe.image_publisher.publish(message)
        probe.spin_for(0.15)

    bad_encoding = image_message(good, stamp, rclpy_types)
    bad_encoding.encoding = "yuv422"
    send(bad_encoding)
    short = image_message(good, stamp + 1_000_000, rclpy_types)
    short.data = short.data[:-100]
    send(short)
    empty = image_message(np.zeros((0, 0, 3), np.uint8), stamp + 2_000_000, rclpy_types)
    send(empty)
    send(image_message(good, stamp + 3_000_000, rclpy_types))
    send(image_message(good, stamp + 2_500_000, rclpy_types))  # backwards
    for index in range(90):  # a 300 Hz burst
        probe.image_publisher.publish(image_message(frames[index % len(frames)],
                                                    stamp + 10_000_000 + index * 3_333_333, rclpy_types))
        time.sleep(1 / 300)
    probe.spin_for(2.0)
    assert process.poll() is None, "the graph died"

    values = diagnostics_values(probe, rclpy_types, "/hand_detector")
    assert int(values.get("dropped_UnsupportedEncodingError", 0)) >= 1, values
    assert int(values.get("dropped_ImageSizeError", 0)) >= 2, values  # wrong size and empty image
    assert int(values.get("dropped_stamp_not_increasing", 0)) >= 1, values
    # The burst outran the detector: frames replaced before processing are counted (those that
    # best-effort DDS drops before they reach the node never arrive to be counted).
    assert int(values.get("dropped_superseded", 0)) >= 1, values

    before = len(probe.received["poses"])
    later = probe.publish_clip(frames[:20], fps, rclpy_types, stamp + 10**10)
    probe.spin_for(3.0)
    new = [stamp_of(m) for _, m in probe.received["poses"][before:]]
    assert set(new) & set(later), "no filtered hands for good frames after the bad input"


def test_wrong_parameter_type_is_refused_at_start():
    process = start_process(["-m", "hand_pose_refiner.ros.nodes.spatial_filter", "--ros-args",
                             "-p", "spatial_filter.max_hands:=two"], cwd=REPO)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "spatial_filter.max_hands" in output and "int" in output


def test_out_of_range_parameter_is_refused_at_run_time(ros_context):
    from rclpy.parameter import Parameter

    from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode

    node = SpatialFilterNode(context=ros_context)
    result = node.set_parameters([Parameter("spatial_filter.max_hands", value=0)])[0]
    assert not result.successful
    assert "spatial_filter.max_hands = 0: out of range, must be >= 1" in result.reason
    wrong_type = node.set_parameters([Parameter("spatial_filter.max_hands", value="two")])[0]
    assert not wrong_type.successful
    assert node.set_parameters([Parameter("spatial_filter.max_hands", value=4)])[0].successful
    node.destroy_node()


def launch_nodes(name: str = "NODES") -> tuple[str, ...]:
    return tuple(launch_file_namespace()[name])


def test_launch_shares_the_cores_between_the_model_nodes_as_the_runner():
    model_node_env = launch_file_namespace({"_model_node_env"})["_model_node_env"]
    share = max(1, (os.cpu_count() or 1) // 2)
    assert model_node_threads(["hand_detector", "hand_pose_estimator", "spatial_filter"]) == share
    assert model_node_env(["hand_detector", "hand_pose_estimator", "spatial_filter"]) == {
        "OMP_NUM_THREADS": str(share)}
    assert model_node_threads(["hand_detector", "spatial_filter", "temporal_filter"]) is None
    assert model_node_env(["hand_detector", "spatial_filter", "temporal_filter"]) == {}


def test_launch_starts_the_package_default_graph():
    assert launch_file_namespace()["DEFAULT_NODES"].split(",") == list(DEFAULT_GRAPH)


def test_every_launched_executable_is_an_installed_entry_point():
    named = set(launch_nodes()) | {"hand-pose-refiner"}
    setup_py = (REPO / "setup.py").read_text()
    entry_points = set(re.findall(r'"([\w-]+) = hand_pose_refiner\.[\w.]+:main"', setup_py))
    cmake = (REPO / "CMakeLists.txt").read_text()
    cmake_nodes = set(re.findall(r"^\s+(\w+):\w+\s*\)?$", cmake, re.MULTILINE))
    assert named <= entry_points, f"not pip entry points: {named - entry_points}"
    assert set(launch_nodes()) == cmake_nodes == set(NODE_EXECUTABLES)
    for executable, module in NODE_EXECUTABLES.items():
        assert f"{executable} = hand_pose_refiner.ros.nodes.{module}:main" in setup_py
        assert f"{executable}:{module}" in cmake


def test_launch_file_runs_where_launch_ros_imports():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; it comes with a "
                                             "ROS 2 install (the static entry-point test covers this file)")
    from launch import LaunchDescription
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(REPO / "launch/assembly.launch.py"))
    assert isinstance(description, LaunchDescription)


def test_lifecycle_transitions_create_and_remove_subscriptions(ros_context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode

    node = SpatialFilterNode(context=ros_context)
    topics = lambda: {s.topic_name for s in node.subscriptions}  # noqa: E731
    assert "/hand_poses/raw" not in topics()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert "/hand_poses/raw" in topics()
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert "/hand_poses/raw" not in topics()
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert "/hand_poses/raw" in topics()
    node.destroy_node()


def test_the_detector_leaves_a_frame_alone_while_the_pose_estimator_follows_max_hands(ros_context, clip,
                                                                                    rclpy_types):
    """MediaPipe's video-mode rule in the detector node: it reads the pose estimator's last output
    (topics.raw_poses) and searches a frame only when fewer than max_hands hands were followed
    within landmark_tracking_max_gap_s."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from hand_pose_refiner.hands import FrameHands
    from hand_pose_refiner.ros.conversions import frame_hands_to_message
    from hand_pose_refiner.ros.nodes.detector import DecodedImage, HandDetectorNode

    node = HandDetectorNode(context=ros_context)
    published: list[int] = []
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert "/hand_poses/raw" in {s.topic_name for s in node.subscriptions}
        node.publisher.publish = lambda message: published.append(message.header.stamp.nanosec)
        rgb = np.ascontiguousarray(clip[0][0][:, :, ::-1])
        two_hands = FrameHands(stamp_ns=100_000_000, image_width=640, image_height=360,
                               keypoints=np.full((2, 21, 2), 50.0, np.float32))
        node._on_raw_poses(frame_hands_to_message(two_hands, rclpy_types))
        node._process(DecodedImage(rgb, 133_000_000, "camera"))  # both followed 33 ms before
        assert published == [] and node.skipped.rejections["hands_followed"] == 1
        node._process(DecodedImage(rgb, 300_000_000, "camera"))  # followed too long ago
        one_hand = FrameHands(stamp_ns=300_000_000, image_width=640, image_height=360,
                              keypoints=np.full((1, 21, 2), 50.0, np.float32))
        node._on_raw_poses(frame_hands_to_message(one_hand, rclpy_types))
        node._process(DecodedImage(rgb, 333_000_000, "camera"))  # room for another hand
        assert published == [300_000_000, 333_000_000]
        assert node.skipped.rejections["hands_followed"] == 1
    finally:
        node.destroy_node()
