"""Reliable hand poses for robot cells, gloved hands included.

The package is split in two:

* the ROS-free core (this package's top-level modules and ``filters``): skeleton, data model,
  COCO conversion, image codecs, config, CLI; it needs only numpy (and torch for models);
* :mod:`hand_pose_refiner.ros`: thin rclpy glue that translates ROS messages to core calls.

The generated ROS 2 message types live in :mod:`hand_pose_refiner.msg`. They are built from
``msg/`` by colcon on a ROS cell, or by ``scripts/setup.sh`` into the virtual environment on a
machine without ROS; ``extend_path`` below lets a source checkout find them there too.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
