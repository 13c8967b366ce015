"""Hand detectors and pose estimators behind one interface (see :mod:`.base`)."""

from __future__ import annotations

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.models.base import Detections, HandDetector, PoseEstimator


def create_backend(config: ModelsConfig | None = None) -> tuple[HandDetector, PoseEstimator]:
    """The detector and pose estimator selected by ``config`` (``models`` section)."""
    config = config or ModelsConfig()
    if config.backend != "mediapipe":
        raise ConfigError(f"models.backend = {config.backend!r}: not available in this build; "
                          f"use 'mediapipe'")
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    detector = MediaPipeHandDetector(config.detector_checkpoint or None, device=config.device,
                                     score_threshold=config.detection_score_threshold,
                                     batch_size=config.batch_size)
    estimator = MediaPipePoseEstimator(config.pose_checkpoint or None, device=config.device,
                                       batch_size=config.batch_size)
    return detector, estimator


__all__ = ["Detections", "HandDetector", "PoseEstimator", "create_backend"]
