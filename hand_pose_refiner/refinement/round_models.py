"""The models of a refinement run's rounds: where each round keeps its weights, and the backend
built from them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hand_pose_refiner.config import Config
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import HandDetector, PoseEstimator, SupportsPresenceThreshold
from hand_pose_refiner.refinement.rounds import Thresholds


def round_weights(run_dir: Path, iteration: int) -> tuple[Path, Path]:
    """Where round ``iteration`` (1 or later) of a run keeps its detector and pose estimator."""
    folder = Path(run_dir) / f"iter{iteration}"
    return folder / "detector.safetensors", folder / "estimator.safetensors"


@dataclass(frozen=True)
class RoundModels:
    """The run folder's round weights over the run's config (round 0: its ``models`` section's
    own checkpoints, None for the backend's default weights; every other model setting, the
    backend's own section included, as the config says)."""

    run_dir: Path
    config: Config

    def paths(self, iteration: int) -> tuple[Path | None, Path | None]:
        """Round ``iteration``'s (detector, pose estimator) weight files."""
        if iteration == 0:
            models = self.config.models
            return (Path(models.detector_checkpoint) if models.detector_checkpoint else None,
                    Path(models.pose_checkpoint) if models.pose_checkpoint else None)
        return round_weights(self.run_dir, iteration)

    def build(self, iteration: int, thresholds: Thresholds | None = None,
              detector_iteration: int | None = None) -> tuple[HandDetector, PoseEstimator]:
        """Round ``iteration``'s models (the detector of ``detector_iteration`` where given), at
        ``thresholds``' detection score and presence where given, else at the config's."""
        detector_path = self.paths(iteration if detector_iteration is None else detector_iteration)[0]
        estimator_path = self.paths(iteration)[1]
        models = replace(self.config.models, detector_checkpoint=str(detector_path or ""),
                         pose_checkpoint=str(estimator_path or ""))
        if thresholds is not None:
            models = replace(models, detection_score_threshold=thresholds.detection_score_threshold)
        detector, estimator = create_backend(replace(self.config, models=models))
        if thresholds is not None and isinstance(estimator, SupportsPresenceThreshold):
            estimator.min_presence = thresholds.min_presence
        return detector, estimator
