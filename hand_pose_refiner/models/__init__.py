"""Hand detectors and pose estimators behind one interface (see :mod:`.base`).

* ``mediapipe``: MediaPipe Hands ported to torch, the default backend;
* ``mmlab``: mmdet + mmpose, the optional OpenMMLab backend;
* ``following``: keypoints followed from frame to frame, as the live pose estimator does;
* ``augment``: training-time image changes; ``distributed``: data-parallel fine-tuning (DDP).

Generic code gets a backend by name through :func:`backend` (or the pair a config selects through
:func:`create_backend`) and never imports a backend's module nor reads a backend's own config
section (``mediapipe``, ``mmlab``); what only some backends can do it asks for with the capability
protocols of :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hand_pose_refiner.config import Config, ModelsConfig
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.models.base import Detections, HandDetector, PoseEstimator


@dataclass(frozen=True)
class Backend:
    """One backend's constructors.

    ``create`` builds the pair a config selects (the ``models`` section's checkpoints, device and
    thresholds, and the backend's own section); ``load_detector`` and ``load_estimator`` load one
    weight file on the CPU with the other settings at their defaults (but what the backend's own
    section says the file is), as a check that the file loads.
    """

    name: str
    create: Callable[[Config], tuple[HandDetector, PoseEstimator]]
    load_detector: Callable[[Config, Path], HandDetector]
    load_estimator: Callable[[Config, Path], PoseEstimator]


# The backends' modules are imported when one is built: mmlab needs the optional mmdet/mmpose
# extra, and a command that builds no model (config check without checkpoints) loads no network.


def _mediapipe_pair(config: Config) -> tuple[HandDetector, PoseEstimator]:
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator

    models, own = config.models, config.mediapipe
    detector = MediaPipeHandDetector(models.detector_checkpoint or None, device=models.device,
                                     score_threshold=models.detection_score_threshold,
                                     batch_size=models.batch_size, tile_size=own.detector_tile_size,
                                     tiles_per_frame=own.detector_tiles_per_frame,
                                     tile_period=own.detector_tile_period, runtime=own.runtime)
    estimator = MediaPipePoseEstimator(models.pose_checkpoint or None, device=models.device,
                                       batch_size=models.batch_size, self_check=own.self_check,
                                       self_check_max_shift=own.self_check_max_shift,
                                       surest_crop=own.surest_crop, runtime=own.runtime)
    return detector, estimator


def _mediapipe_detector(config: Config, path: Path) -> HandDetector:
    from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector

    return MediaPipeHandDetector(path, device="cpu")


def _mediapipe_estimator(config: Config, path: Path) -> PoseEstimator:
    from hand_pose_refiner.models.mediapipe import MediaPipePoseEstimator

    return MediaPipePoseEstimator(path, device="cpu")


def _mmlab_pair(config: Config) -> tuple[HandDetector, PoseEstimator]:
    from hand_pose_refiner.models.mmlab import MMLabHandDetector, MMLabPoseEstimator

    models, own = config.models, config.mmlab
    return (MMLabHandDetector(models.detector_checkpoint or None, own.detector_config,
                              device=models.device, score_threshold=models.detection_score_threshold,
                              batch_size=models.batch_size),
            MMLabPoseEstimator(models.pose_checkpoint or None, own.pose_config, device=models.device,
                               batch_size=models.batch_size))


def _mmlab_detector(config: Config, path: Path) -> HandDetector:
    from hand_pose_refiner.models.mmlab import MMLabHandDetector

    return MMLabHandDetector(path, config.mmlab.detector_config, "cpu")


def _mmlab_estimator(config: Config, path: Path) -> PoseEstimator:
    from hand_pose_refiner.models.mmlab import MMLabPoseEstimator

    return MMLabPoseEstimator(path, config.mmlab.pose_config, "cpu")


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


def create_backend(config: Config | ModelsConfig | None = None) -> tuple[HandDetector, PoseEstimator]:
    """The detector and pose estimator a config selects: its ``models`` section, and the chosen
    backend's own section (``mediapipe`` or ``mmlab``). A ``models`` section alone leaves the
    backend's own keys at their defaults.

    ``mmlab`` (mmdet + mmpose) is an optional extra: a missing install is refused with a
    :class:`ModelError` that says how to install it.
    """
    if not isinstance(config, Config):
        config = Config(models=config or ModelsConfig())
    return backend(config.models.backend).create(config)


__all__ = ["BACKENDS", "Backend", "Detections", "HandDetector", "PoseEstimator", "backend", "create_backend"]
