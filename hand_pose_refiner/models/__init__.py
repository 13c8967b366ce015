"""Hand detectors and pose estimators behind one interface (see :mod:`.base`).

* ``mediapipe``: MediaPipe Hands ported to torch, the default backend;
* ``mmlab``: mmdet + mmpose, the optional OpenMMLab backend;
* ``following``: keypoints followed from frame to frame, as the live pose estimator does;
* ``augment``: training-time image changes; ``distributed``: data-parallel fine-tuning (DDP).

:func:`create_backend` builds the pair a ``models`` config section selects.
"""

from __future__ import annotations

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.models.base import Detections, HandDetector, PoseEstimator


def create_backend(config: ModelsConfig | None = None) -> tuple[HandDetector, PoseEstimator]:
    """The detector and pose estimator selected by ``config`` (``models`` section).

    ``mmlab`` (mmdet + mmpose) is an optional extra: it is imported only here, and a missing
    install is refused with a :class:`ModelError` that says how to install it.
    """
    config = config or ModelsConfig()
    if config.backend == "mmlab":
        from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

        return (MMLabHandDetector(config.detector_checkpoint or None, config.detector_config,
                                  device=config.device, score_threshold=config.detection_score_threshold,
                                  batch_size=config.batch_size),
                MMLabPoseEstimator(config.pose_checkpoint or None, config.pose_config, device=config.device,
                                   batch_size=config.batch_size))
    if config.backend not in ("mediapipe", "default"):
        raise ConfigError(f"models.backend = {config.backend!r}: unknown; use 'mediapipe' (or 'default') "
                          "or 'mmlab'")
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    detector = MediaPipeHandDetector(config.detector_checkpoint or None, device=config.device,
                                     score_threshold=config.detection_score_threshold,
                                     batch_size=config.batch_size, tile_size=config.detector_tile_size)
    estimator = MediaPipePoseEstimator(config.pose_checkpoint or None, device=config.device,
                                       batch_size=config.batch_size, self_check=config.self_check,
                                       self_check_max_shift=config.self_check_max_shift,
                                       surest_crop=config.surest_crop)
    return detector, estimator


__all__ = ["Detections", "HandDetector", "PoseEstimator", "create_backend"]
