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

# executable name -> module under hand_pose_refiner.ros.nodes (setup.py, CMakeLists.txt and the
# launch file use the same names; a test checks they agree).
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
