"""Hand detectors and pose estimators behind one interface (see :mod:`.base`).

* ``mediapipe``: MediaPipe Hands ported to torch, the default backend;
* ``mmlab``: mmdet + mmpose, the optional OpenMMLab backend;
* ``following``: keypoints followed from frame to frame, as the live pose estimator does;
* ``augment``: training-time image changes; ``distributed``: data-parallel fine-tuning (DDP).

Generic code gets a backend by name through :func:`backend` (or the pair a ``models`` config
section selects through :func:`create_backend`) and never imports a backend's module; what only
some backends can do it asks for with the capability protocols of :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.models.base import Detections, HandDetector, PoseEstimator


@dataclass(frozen=True)
class Backend:
    """One backend's constructors.

    ``create`` builds the pair a ``models`` section selects (its checkpoints, device, thresholds);
    ``load_detector`` and ``load_estimator`` load one weight file on the CPU with the section's
    other settings at their defaults, as a check that the file loads.
    """

    name: str
    create: Callable[[ModelsConfig], tuple[HandDetector, PoseEstimator]]
    load_detector: Callable[[ModelsConfig, Path], HandDetector]
    load_estimator: Callable[[ModelsConfig, Path], PoseEstimator]


# The backends' modules are imported when one is built: mmlab needs the optional mmdet/mmpose
# extra, and a command that builds no model (config check without checkpoints) loads no network.


def _mediapipe_pair(config: ModelsConfig) -> tuple[HandDetector, PoseEstimator]:
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    detector = MediaPipeHandDetector(config.detector_checkpoint or None, device=config.device,
                                     score_threshold=config.detection_score_threshold,
                                     batch_size=config.batch_size, tile_size=config.detector_tile_size)
    estimator = MediaPipePoseEstimator(config.pose_checkpoint or None, device=config.device,
                                       batch_size=config.batch_size, self_check=config.self_check,
                                       self_check_max_shift=config.self_check_max_shift,
                                       surest_crop=config.surest_crop)
    return detector, estimator


def _mediapipe_detector(config: ModelsConfig, path: Path) -> HandDetector:
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector

    return MediaPipeHandDetector(path, device="cpu")


def _mediapipe_estimator(config: ModelsConfig, path: Path) -> PoseEstimator:
    from hand_pose_refiner.models.mediapipe import MediaPipePoseEstimator

    return MediaPipePoseEstimator(path, device="cpu")


def _mmlab_pair(config: ModelsConfig) -> tuple[HandDetector, PoseEstimator]:
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    return (MMLabHandDetector(config.detector_checkpoint or None, config.detector_config,
                              device=config.device, score_threshold=config.detection_score_threshold,
                              batch_size=config.batch_size),
            MMLabPoseEstimator(config.pose_checkpoint or None, config.pose_config, device=config.device,
                               batch_size=config.batch_size))


def _mmlab_detector(config: ModelsConfig, path: Path) -> HandDetector:
    from hand_pose_refiner.models.mmlab import MMLabHandDetector

    return MMLabHandDetector(path, config.detector_config, "cpu")


def _mmlab_estimator(config: ModelsConfig, path: Path) -> PoseEstimator:
    from hand_pose_refiner.models.mmlab import MMLabPoseEstimator

    return MMLabPoseEstimator(path, config.pose_config, "cpu")


_MEDIAPIPE = Backend("mediapipe", _mediapipe_pair, _mediapipe_detector, _mediapipe_estimator)
BACKENDS: dict[str, Backend] = {
    "mediapipe": _MEDIAPIPE,
    "default": _MEDIAPIPE,
    "mmlab": Backend("mmlab", _mmlab_pair, _mmlab_detector, _mmlab_estimator),
}


def backend(name: str) -> Backend:
    """The backend called ``name`` (``models.backend``); an unknown name is a :class:`ConfigError`."""
    if name not in BACKENDS:
        raise ConfigError(f"models.backend = {name!r}: unknown; use 'mediapipe' (or 'default') or 'mmlab'")
    return BACKENDS[name]


def create_backend(config: ModelsConfig | None = None) -> tuple[HandDetector, PoseEstimator]:
    """The detector and pose estimator selected by ``config`` (``models`` section).

    ``mmlab`` (mmdet + mmpose) is an optional extra: a missing install is refused with a
    :class:`ModelError` that says how to install it.
    """
    config = config or ModelsConfig()
    return backend(config.backend).create(config)


__all__ = ["BACKENDS", "Backend", "Detections", "HandDetector", "PoseEstimator", "backend", "create_backend"]
