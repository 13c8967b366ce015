"""The rclpy nodes of the hand pose graph; each module has a ``main`` entry point.

=====================  ==========================================  ===============================
executable             input                                       output
=====================  ==========================================  ===============================
hand_detector          image (Image or CompressedImage)            detections (HandDetectionArray)
hand_pose_estimator    image + detections of the same stamp        hand_poses/raw (HandPoseArray)
spatial_filter         hand_poses/raw                              hand_poses/spatial
temporal_filter        hand_poses/spatial                          hand_poses (tracked, smoothed)
activity_recognizer    hand_poses                                  hand_activity (HandActivity)
pose_overlay           image + hand_poses                          hand_overlay (Image)
=====================  ==========================================  ===============================

Topic names come from the ``topics`` config section, relative to the node's namespace, so one
graph per camera runs under its own namespace and every topic can be remapped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# executable name -> module under hand_pose_refiner.ros.nodes (setup.py and CMakeLists.txt install
# the same names, a test checks they agree; the launch file imports these names from here).
NODE_EXECUTABLES: dict[str, str] = {
    "hand_detector": "detector",
    "hand_pose_estimator": "pose_estimator",
    "spatial_filter": "spatial_filter",
    "temporal_filter": "temporal_filter",
    "activity_recognizer": "activity_recognizer",
    "pose_overlay": "pose_overlay",
}

# What `hand-pose-refiner run` and the launch file start unless told otherwise: the pose stages and
# the activity recogniser (with the packaged reach model when activity.checkpoint is empty).
DEFAULT_GRAPH: tuple[str, ...] = ("hand_detector", "hand_pose_estimator", "spatial_filter", "temporal_filter",
                                  "activity_recognizer")

# The nodes that run a network; when several share a machine they share its cores.
MODEL_NODES: tuple[str, ...] = ("hand_detector", "hand_pose_estimator")


def model_node_threads(nodes: Sequence[str]) -> int | None:
    """Torch threads for each model node of ``nodes`` (None: at most one model node, all cores).

    Each model infers on its own thread or process; torch's default (all cores per operation) in
    two of them oversubscribes the cores (docs/design/live_graph.md). ``hand-pose-refiner run``
    and the launch file's model node processes both take this share.
    """
    models = sum(name in MODEL_NODES for name in nodes)
    return max(1, (os.cpu_count() or 1) // models) if models > 1 else None
