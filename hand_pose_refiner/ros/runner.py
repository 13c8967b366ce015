"""``hand-pose-refiner run``: the whole node graph in one process.

The same node classes as the launch file, in one multi-threaded executor: no process hops, no
launch system needed. Nodes are configured and activated at once. ROS arguments given after
``--ros-args`` (as launch_ros appends them when the launch file's ``composition:=true`` starts
this command) reach every node, except a node-name remap (see :func:`graph_ros_arguments`).
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hand_pose_refiner.config import commented_yaml, load_config
from hand_pose_refiner.ros.nodes import NODE_EXECUTABLES, model_node_threads
from hand_pose_refiner.ros.nodes.base import HandPoseNode, run_nodes


def node_class(executable: str) -> type[HandPoseNode]:
    """The node class behind an executable name (``hand_detector`` -> HandDetectorNode)."""
    if executable not in NODE_EXECUTABLES:
        raise ValueError(f"unknown node {executable!r}; known: {', '.join(NODE_EXECUTABLES)}")
    module = importlib.import_module(f"hand_pose_refiner.ros.nodes.{NODE_EXECUTABLES[executable]}")
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, HandPoseNode) and value is not HandPoseNode
               and value.__module__ == module.__name__]
    return classes[0]


def share_cores_between_models(nodes: Sequence[str]) -> None:
    """Give each model node running in this process its share of the CPU cores."""
    threads = model_node_threads(nodes)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def ros_arguments(config: Path | None, namespace: str, image_topic: str | None,
                  extra: Sequence[str] = ()) -> list[str]:
    """``--ros-args`` for every node: parameter file, namespace, autostart, image remapping."""
    arguments = ["--ros-args", "-p", "autostart:=true"]
    if config is not None:
        arguments += ["--params-file", str(config)]
    if namespace:
        arguments += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    if image_topic:
        arguments += ["-p", f"topics.image:={image_topic}"]
    return arguments + list(extra)


OVERLAY_NODE = "pose_overlay"
REMAP_FLAGS = ("-r", "--remap")
NODE_NAME_REMAPS = ("__node:=", "__name:=")
NAMESPACE_REMAP = "__ns:="


def graph_nodes(nodes: Sequence[str], overlay: bool = False) -> list[str]:
    """The nodes to start: ``nodes`` in order, once each, and ``pose_overlay`` when ``overlay``."""
    return list(dict.fromkeys([*nodes, *([OVERLAY_NODE] if overlay else [])]))


@dataclass(frozen=True)
class GraphRosArguments:
    """The ROS arguments of a graph process, sorted by what a process of several nodes does with them."""

    namespace: str | None  # from ``-r __ns:=NS``: the namespace the graph goes under
    passed_on: tuple[str, ...]  # for every node: parameters, parameter files, topic remaps, logging
    dropped: tuple[str, ...]  # node-name remaps


def graph_ros_arguments(arguments: Sequence[str]) -> GraphRosArguments:
    """Sort the tokens given after ``--ros-args`` (further ``--ros-args`` markers are skipped).

    A node-name remap (``-r __node:=NAME``, which launch_ros appends for ``Node(name=...)``) would
    give every node of the process that one name, so it is dropped: each node keeps its own. A
    namespace remap (``-r __ns:=NS``, from launch_ros's namespace or PushRosNamespace) is returned
    apart, to combine with ``--namespace`` (:func:`graph_namespace`). Node-targeted remaps
    (``spatial_filter:__node:=...``) and everything else pass on unchanged.
    """
    tokens = [token for token in arguments if token != "--ros-args"]
    namespace: str | None = None
    passed_on: list[str] = []
    dropped: list[str] = []
    index = 0
    while index < len(tokens):
        flag = tokens[index]
        rule = tokens[index + 1] if flag in REMAP_FLAGS and index + 1 < len(tokens) else None
        if rule is None:
            passed_on.append(flag)
            index += 1
            continue
        if rule.startswith(NODE_NAME_REMAPS):
            dropped.append(rule)
        elif rule.startswith(NAMESPACE_REMAP):
            namespace = rule[len(NAMESPACE_REMAP):]
        else:
            passed_on += [flag, rule]
        index += 2
    return GraphRosArguments(namespace, tuple(passed_on), tuple(dropped))


def graph_namespace(ros_namespace: str | None, namespace: str) -> str:
    """``namespace`` under the namespace of a ``__ns:=`` remap, as launch_ros prefixes a node's
    namespace with a pushed one: an absolute ``namespace`` stands alone, a relative one is appended."""
    if not ros_namespace or namespace.startswith("/"):
        return namespace or (ros_namespace or "")
    if not namespace:
        return ros_namespace
    return f"{ros_namespace.rstrip('/')}/{namespace}"


def run_graph(nodes: Sequence[str], config: Path | None, namespace: str = "",
              image_topic: str | None = None, ros_args: Sequence[str] = ()) -> int:
    """Run the named nodes in this process until Ctrl-C; returns an exit code.

    The config file may be a plain mapping or a ROS parameter file: it is validated, then handed
    to the nodes as a ROS parameter file written from the validated values. ``ros_args`` are the
    tokens given after ``--ros-args`` (:func:`graph_ros_arguments`); their parameters come after
    the config file's, so they override it.
    """
    factories: list[Callable[[], HandPoseNode]] = [node_class(name) for name in nodes]
    extra = graph_ros_arguments(ros_args)
    if extra.dropped:
        print(f"hand-pose-refiner run: ignoring {' '.join(extra.dropped)}: each node of the graph keeps "
              f"its own name", file=sys.stderr)
    share_cores_between_models(nodes)
    with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_") as folder:
        parameters = Path(folder) / "parameters.yaml"
        parameters.write_text(commented_yaml(load_config(config), offline_sections=False))
        arguments = ros_arguments(parameters, graph_namespace(extra.namespace, namespace), image_topic,
                                  extra.passed_on)
        return run_nodes(factories, ["hand-pose-refiner", *arguments])
