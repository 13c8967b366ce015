"""The ROS side of hand_pose_refiner: the nodes, message conversions and rosbag I/O.

Nothing here holds an algorithm: it translates ROS messages to the core's containers and back.
Modules import rclpy only where they need a live ROS graph; conversions and bags work with
rosbags' message classes as well as rclpy's.

* ``nodes``: the lifecycle nodes of the hand pose graph, one executable each;
* ``runner``: ``hand-pose-refiner run``, the whole graph in one process;
* ``conversions``, ``images``: FrameHands and images <-> messages;
* ``interfaces``: the generated message classes, with a clear error when they are missing;
* ``bags``: rosbag2 reading and writing; ``pairing``: streams paired by header stamp;
* ``qos``, ``diagnostics``: quality-of-service profiles and per-node health on ``/diagnostics``;
* ``probe``: a probe that publishes a clip into a running graph and records every stage
  (frames delivered, drops, latency).
"""
