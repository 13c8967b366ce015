"""``composition:=true`` and ``overlay:=true`` of launch/assembly.launch.py, and the ``--ros-args``
that launch_ros appends to ``hand-pose-refiner run``.

launch_ros is not on PyPI, so the launch file's own functions that build the node list and the
``run`` command line are loaded from its source and fed to the real CLI parser and to a real
``run`` process; where launch_ros imports, the launch file itself is started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import LAUNCH_FILE, REPO, import_or_skip_ros, launch_file_namespace

from hand_pose_refiner.cli import build_parser
from hand_pose_refiner.ros.probe import GraphProbe, start_process, stop_processes
from hand_pose_refiner.ros.runner import graph_namespace, graph_nodes, graph_ros_arguments

CONFIG = str(REPO / "config/assembly.yaml")
# What launch_ros appends after a Node's arguments: always ``--ros-args``; ``-r __node:=NAME`` for
# Node(name=...); ``-r __ns:=NS`` under PushRosNamespace; ``-p``/``--params-file`` for SetParameter.
LAUNCH_ROS_TAILS = (
    ["--ros-args"],
    ["--ros-args", "-r", "__node:=hand_pose_graph"],
    ["--ros-args", "-r", "__node:=hand_pose_graph", "-r", "__ns:=/robot", "-p", "spatial_filter.max_hands:=1",
     "--params-file", CONFIG, "-r", "hand_poses:=filtered_hands"],
)


def launch_file_functions() -> dict[str, Any]:
    """The launch file's constants and the functions that need nothing from launch itself."""
    return launch_file_namespace({"_is_true", "_node_names", "_composition_arguments"})


def composition_command(listed: str, overlay: str, namespace: str, config_file: str = CONFIG) -> list[str]:
    launch = launch_file_functions()
    names = launch["_node_names"](listed, overlay)
    return launch["_composition_arguments"](names, config_file, "camera/image_raw", namespace)


@pytest.mark.parametrize("tail", LAUNCH_ROS_TAILS, ids=["bare", "node_name", "pushed_namespace_parameters"])
@pytest.mark.parametrize(("listed", "overlay", "namespace", "expected_nodes"), [
    ("hand_detector,hand_pose_estimator,spatial_filter,temporal_filter", "false", "",
     ["hand_detector", "hand_pose_estimator", "spatial_filter", "temporal_filter"]),
    ("hand_detector, spatial_filter", "true", "cam_left",
     ["hand_detector", "spatial_filter", "pose_overlay"]),
    ("spatial_filter,pose_overlay", "True", "/cell/cam_2", ["spatial_filter", "pose_overlay"]),
    ("temporal_filter,activity_recognizer", "0", "cam1", ["temporal_filter", "activity_recognizer"]),
])
def test_composition_command_line_is_accepted_by_run(listed, overlay, namespace, expected_nodes, tail):
    command = composition_command(listed, overlay, namespace)
    args = build_parser().parse_args([*command, *tail])
    assert args.handler.__name__ == "_cmd_run"
    assert graph_nodes(args.nodes, args.overlay) == expected_nodes
    assert args.config == Path(CONFIG) and args.image_topic == "camera/image_raw"
    assert args.namespace == namespace
    assert args.ros_args == tail[1:]
    sorted_arguments = graph_ros_arguments(args.ros_args)
    assert not any("__node:=" in token for token in sorted_arguments.passed_on)
    named = "__node:=hand_pose_graph" in tail
    assert sorted_arguments.dropped == (("__node:=hand_pose_graph",) if named else ())
    if "__ns:=/robot" in tail:
        passed_on = set(sorted_arguments.passed_on)
        assert {"spatial_filter.max_hands:=1", "hand_poses:=filtered_hands"} <= passed_on
        expected_namespace = namespace if namespace.startswith("/") else "/robot/" + namespace
        assert graph_namespace(sorted_arguments.namespace, namespace) == expected_namespace.rstrip("/")


def test_overlay_adds_the_overlay_node_once_and_unknown_nodes_are_refused():
    launch = launch_file_functions()
    assert launch["_node_names"]("spatial_filter", "false") == ["spatial_filter"]
    assert launch["_node_names"]("spatial_filter", "yes") == ["spatial_filter", "pose_overlay"]
    assert launch["_node_names"]("pose_overlay,spatial_filter", "true") == ["pose_overlay", "spatial_filter"]
    with pytest.raises(ValueError, match="unknown nodes"):
        launch["_node_names"]("spatial_filter,hand_tracker", "false")
    args = build_parser().parse_args(["run", "--nodes", "spatial_filter", "--overlay"])
    assert graph_nodes(args.nodes, args.overlay) == ["spatial_filter", "pose_overlay"]
    assert graph_nodes(["pose_overlay", "spatial_filter"], overlay=True) == ["pose_overlay", "spatial_filter"]


def test_ros_arguments_are_sorted_for_a_process_of_several_nodes():
    sorted_arguments = graph_ros_arguments(
        ["--ros-args", "-r", "__node:=graph", "--remap", "__ns:=/robot", "--ros-args", "--log-level", "debug",
         "-r", "spatial_filter:__node:=left_filter", "-p", "a.b:=1", "-r", "__name:=old_style"])
    assert sorted_arguments.namespace == "/robot"
    assert sorted_arguments.dropped == ("__node:=graph", "__name:=old_style")
    assert sorted_arguments.passed_on == ("--log-level", "debug", "-r", "spatial_filter:__node:=left_filter",
                                          "-p", "a.b:=1")
    assert graph_namespace(None, "") == "" and graph_namespace(None, "cam1") == "cam1"
    assert graph_namespace("/robot", "") == "/robot" and graph_namespace("/robot", "cam1") == "/robot/cam1"
    assert graph_namespace("/robot", "/cam1") == "/cam1" and graph_namespace("/", "cam1") == "/cam1"


def wait_for_nodes(probe: GraphProbe, expected: set[str], timeout: float = 60.0) -> set[str]:
    """Full names of the nodes in the graph, once all ``expected`` ones are there (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        graph = probe.node.get_node_names_and_namespaces()
        names = {f"{namespace.rstrip('/')}/{name}" for name, namespace in graph}
        if expected <= names or time.monotonic() > deadline:
            return names
        probe.spin_for(0.2)


def remote_parameter(probe: GraphProbe, node: str, name: str) -> Any:
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(probe.node, node)
    assert client.wait_for_services(timeout_sec=10.0), f"{node} offers no parameter services"
    future = client.get_parameters([name])
    probe.executor.spin_until_future_complete(future, timeout_sec=10.0)
    return parameter_value_to_python(future.result().values[0])


def test_run_started_as_launch_ros_starts_it_keeps_node_names_and_uses_the_ros_arguments(rclpy_types):
    """The composition command line with launch_ros's tail (node name, pushed namespace, parameter)."""
    rclpy = import_or_skip_ros("rclpy")
    command = composition_command("spatial_filter,temporal_filter", "false", "left")
    process = start_process(["-m", "hand_pose_refiner.cli", *command, "--ros-args",
                             "-r", "__node:=hand_pose_graph", "-r", "__ns:=/robot",
                             "-p", "spatial_filter.max_hands:=1"], cwd=REPO)
    probe = GraphProbe(rclpy, rclpy_types)
    try:
        expected = {"/robot/left/spatial_filter", "/robot/left/temporal_filter"}
        names = wait_for_nodes(probe, expected)
        assert expected <= names, (names, process.poll())
        assert not any(name.endswith("hand_pose_graph") for name in names)
        assert remote_parameter(probe, "/robot/left/spatial_filter", "spatial_filter.max_hands") == 1
        assert remote_parameter(probe, "/robot/left/temporal_filter", "topics.image") == "camera/image_raw"
        deadline = time.monotonic() + 10.0
        while probe.node.count_subscribers("/robot/left/hand_poses/raw") < 1 and time.monotonic() < deadline:
            probe.spin_for(0.1)
        assert probe.node.count_subscribers("/robot/left/hand_poses/raw") == 1, "spatial_filter is not active"
    finally:
        probe.close()
        output = stop_processes([process])[0]
    assert process.returncode == 0, output
    assert "ignoring __node:=hand_pose_graph" in output


LAUNCH_SERVICE = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

service = LaunchService()
arguments = [tuple(argument.split(":=", 1)) for argument in sys.argv[2:]]
service.include_launch_description(IncludeLaunchDescription(PythonLaunchDescriptionSource(sys.argv[1]),
                                                            launch_arguments=arguments))
sys.exit(service.run())
"""


def test_composition_launch_starts_the_graph_where_launch_ros_imports(rclpy_types):
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; it comes with a ROS 2 "
                                             "install (the tests above check the command line it runs)")
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("hand_pose_refiner")
    except PackageNotFoundError:
        pytest.skip("hand_pose_refiner is not installed in an ament prefix (colcon build, source install)")
    rclpy = import_or_skip_ros("rclpy")
    process = start_process(["-c", LAUNCH_SERVICE, str(LAUNCH_FILE), "composition:=true",
                             "namespace:=launched", "nodes:=spatial_filter,temporal_filter",
                             "overlay:=true", f"config_file:={CONFIG}"], cwd=REPO)
    probe = GraphProbe(rclpy, rclpy_types)
    try:
        expected = {"/launched/spatial_filter", "/launched/temporal_filter", "/launched/pose_overlay"}
        names = wait_for_nodes(probe, expected, timeout=90.0)
        assert expected <= names, (names, process.poll())
        assert process.poll() is None, "the launch exited"
    finally:
        probe.close()
        output = stop_processes([process])[0]
    assert "unrecognized arguments" not in output, output
