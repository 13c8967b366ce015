"""``hand-pose-refiner run``: the whole node graph in one process.

The same node classes as the launch file, in one multi-threaded executor: no process hops, no
launch system needed. Nodes are configured and activated at once.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from hand_pose_refiner.config import commented_yaml, load_config
from hand_pose_refiner.ros.nodes import NODE_EXECUTABLES
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


MODEL_NODES = ("hand_detector", "hand_pose_estimator")


def model_node_threads(nodes: Sequence[str]) -> int | None:
    """Torch threads for each model node of ``nodes`` (None: at most one model node, all cores).

    Each model infers on its own thread or process; with torch's default (all cores per
    operation) two of them oversubscribe the cores. Measured on 2 cores, 640x480 at 30 Hz: in one
    process 28.5 FPS, p95 98 ms with the default, 30.0 FPS, p95 53 ms with one thread each; as
    processes, p95 49-50 ms with the default, 44-50 ms with one each (bench/bench_graph.py).
    launch/assembly.launch.py gives its model node processes the same share.
    """
    models = sum(name in MODEL_NODES for name in nodes)
    return max(1, (os.cpu_count() or 1) // models) if models > 1 else None


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


def run_graph(nodes: Sequence[str], config: Path | None, namespace: str = "",
              image_topic: str | None = None) -> int:
    """Run the named nodes in this process until Ctrl-C; returns an exit code.

    The config file may be a plain mapping or a ROS parameter file: it is validated, then handed
    to the nodes as a ROS parameter file written from the validated values.
    """
    factories: list[Callable[[], HandPoseNode]] = [node_class(name) for name in nodes]
    share_cores_between_models(nodes)
    with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_") as folder:
        parameters = Path(folder) / "parameters.yaml"
        parameters.write_text(commented_yaml(load_config(config)))
        return run_nodes(factories, ["hand-pose-refiner", *ros_arguments(parameters, namespace, image_topic)])
