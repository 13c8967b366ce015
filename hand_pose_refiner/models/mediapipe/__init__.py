"""MediaPipe Hands (palm detector + hand landmark model, full) ported to native torch."""

from __future__ import annotations

from hand_pose_refiner.models.mediapipe.detector import MediaPipeHandDetector
from hand_pose_refiner.models.mediapipe.estimator import MediaPipePoseEstimator

__all__ = ["MediaPipeHandDetector", "MediaPipePoseEstimator"]
