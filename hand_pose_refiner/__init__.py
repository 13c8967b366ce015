"""Reliable hand poses for robot cells, gloved hands included.

Python API (:mod:`hand_pose_refiner.api`), the live graph's models and filters without ROS::

    from hand_pose_refiner import HandPipeline
    pipeline = HandPipeline()                  # or HandPipeline("deploy.yaml") / HandPipeline(config)
    hands = pipeline(image)                    # detector + pose + spatial filter on a BGR uint8 image
    for hands in pipeline.track("clip.webm"):  # or frames, or (seconds, frame) pairs
        ...                                    # + tracking + online temporal filter

Images are in OpenCV's BGR order unless ``color="rgb"`` is given.

Each result is a :class:`FrameHands` (``keypoints`` ``(n, 21, 2)`` pixels, scores, handedness,
boxes, track ids). Both names load on first use, so ``import hand_pose_refiner`` stays light
(no torch).

The package is split in two:

* the ROS-free core (this package's top-level modules and ``filters``, ``models``,
  ``refinement`` and ``activity``): skeleton, data model, COCO conversion, image codecs, config,
  CLI, the filters, the models, the refinement loop and the activity recognisers; it runs
  without ROS;
* :mod:`hand_pose_refiner.ros`: thin rclpy glue that translates ROS messages to core calls.

The generated ROS 2 message types live in :mod:`hand_pose_refiner.msg`. They are built from
``msg/`` by colcon on a ROS cell, or by ``scripts/setup.sh`` into the virtual environment on a
machine without ROS; ``extend_path`` below lets a source checkout find them there too.
"""

from importlib import import_module
from pkgutil import extend_path
from typing import Any

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY_EXPORTS = {"HandPipeline": "hand_pose_refiner.api", "FrameHands": "hand_pose_refiner.hands"}

__all__ = ["FrameHands", "HandPipeline", "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
