"""The ROS side of hand_pose_refiner: message conversions, rosbag I/O and (later) the nodes.

Nothing here holds an algorithm: it translates ROS messages to the core's containers and back.
Modules import rclpy only where they need a live ROS graph; conversions and bags work with
rosbags' message classes as well as rclpy's.
"""
