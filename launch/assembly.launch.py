"""Hand pose graph of one camera: ``ros2 launch hand_pose_refiner assembly.launch.py``.

Arguments (``ros2 launch hand_pose_refiner assembly.launch.py --show-args``):
  camera_topic   camera image topic the graph subscribes to          (default: image_raw)
  namespace      namespace of every node and relative topic            (default: none)
  config_file    parameter file, the package's config/assembly.yaml    (default: packaged one)
  nodes          comma-separated nodes to start                        (default: all but pose_overlay)
  overlay        true: add pose_overlay (the image with hands drawn)   (default: false)
  composition    true: all nodes in one process (hand-pose-refiner run) (default: false)

Each node is a lifecycle node: the launch file configures it, and activates it once configured
(with composition, the one process configures and activates its nodes itself).
Start one launch per camera with its own namespace.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH, MODEL_NODES, NODE_EXECUTABLES, model_node_threads

PACKAGE = "hand_pose_refiner"
NODES = tuple(NODE_EXECUTABLES)
DEFAULT_NODES = ",".join(DEFAULT_GRAPH)
OVERLAY_NODE = "pose_overlay"


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def _node_names(listed: str, overlay: str) -> list[str]:
    """The nodes to start: the comma-separated ``listed`` ones, and pose_overlay if ``overlay``."""
    names = [name.strip() for name in listed.split(",") if name.strip()]
    unknown = sorted(set(names) - set(NODES))
    if unknown:
        raise ValueError(f"unknown nodes {unknown}; known: {', '.join(NODES)}")
    if _is_true(overlay) and OVERLAY_NODE not in names:
        names.append(OVERLAY_NODE)
    return names


def _composition_arguments(names: list[str], config_file: str, camera_topic: str,
                           namespace: str) -> list[str]:
    """``hand-pose-refiner run``'s arguments for one process of ``names``.

    launch_ros appends ``--ros-args`` to them (with the namespace, parameters and remaps of an
    including launch file's PushRosNamespace, SetParameter and SetRemap); ``run`` passes those on
    to every node, as the separate node processes get them.
    """
    arguments = ["run", "--config", config_file, "--image-topic", camera_topic, "--nodes", *names]
    return arguments + (["--namespace", namespace] if namespace else [])


def _model_node_env(names: list[str]) -> dict[str, str]:
    """The model node processes' share of the CPU cores, as ``hand-pose-refiner run`` gives it."""
    threads = model_node_threads(names)
    return {} if threads is None else {"OMP_NUM_THREADS": str(threads)}


def _lifecycle_node(executable: str, namespace: str, config_file: str, camera_topic: str,
                    env: dict[str, str]) -> list:
    node = LifecycleNode(
        package=PACKAGE, executable=executable, name=executable, namespace=namespace,
        parameters=[config_file, {"topics.image": camera_topic}], output="screen",
        additional_env=env if executable in MODEL_NODES else {})
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_CONFIGURE))
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    return [node, activate_when_configured, configure]


def _graph(context: object) -> list:
    namespace = LaunchConfiguration("namespace").perform(context)
    config_file = LaunchConfiguration("config_file").perform(context)
    camera_topic = LaunchConfiguration("camera_topic").perform(context)
    names = _node_names(LaunchConfiguration("nodes").perform(context),
                        LaunchConfiguration("overlay").perform(context))
    if _is_true(LaunchConfiguration("composition").perform(context)):
        return [Node(package=PACKAGE, executable="hand-pose-refiner", output="screen",
                     arguments=_composition_arguments(names, config_file, camera_topic, namespace))]
    actions: list = []
    env = _model_node_env(names)
    for name in names:
        actions += _lifecycle_node(name, namespace, config_file, camera_topic, env)
    return actions


def generate_launch_description() -> LaunchDescription:
    default_config = [FindPackageShare(PACKAGE), "/config/assembly.yaml"]
    return LaunchDescription([
        DeclareLaunchArgument("camera_topic", default_value="image_raw",
                              description="camera image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the graph"),
        DeclareLaunchArgument("config_file", default_value=default_config,
                              description="parameter file (see config/assembly.yaml)"),
        DeclareLaunchArgument("nodes", default_value=DEFAULT_NODES,
                              description=f"comma-separated nodes to start, of: {', '.join(NODES)}"),
        DeclareLaunchArgument("overlay", default_value="false",
                              description=f"also start {OVERLAY_NODE} (the image with the hands drawn)"),
        DeclareLaunchArgument("composition", default_value="false",
                              description="run all nodes in one process"),
        OpaqueFunction(function=_graph),
    ])
