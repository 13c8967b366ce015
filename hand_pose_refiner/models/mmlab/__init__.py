"""The OpenMMLab backend: mmdet's Cascade R-CNN and mmpose's HRNet, as in arXiv 2307.03007.

Optional: needs the mmlab extra (``bash scripts/setup.sh --mmlab``). Importing this package does
not import mmdet or mmpose; creating a model does, and says how to install them when they are
missing.
"""

from hand_pose_refiner.models.mmlab.detector import MMLabHandDetector
from hand_pose_refiner.models.mmlab.estimator import MMLabPoseEstimator

__all__ = ["MMLabHandDetector", "MMLabPoseEstimator"]
