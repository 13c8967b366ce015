"""The handoff from a finished refinement to the live graph: ``RUN/deploy.yaml``.

A complete ROS 2 parameter file: the run's config (tiles, thresholds, filters: every setting
the kept round was evaluated with) with the kept round's checkpoints as absolute paths, and
without the offline-only refinement section. ``ros2 launch ... config_file:=`` and
``hand-pose-refiner run --config`` load it; the backend brings a refined detector's kept heads
from its checkpoint, so the live models are the ones the round was evaluated with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from hand_pose_refiner.atomic import atomic_write_text
from hand_pose_refiner.config import Config, RefinementConfig, commented_yaml

DEPLOY_FILE = "deploy.yaml"


@dataclass(frozen=True)
class Deployment:
    """A written deploy file: where it is, which round it holds, and the config it holds."""

    path: Path
    iteration: int
    config: Config


def _absolute(path: Path | None) -> str:
    return os.path.abspath(path) if path is not None else ""


def deploy_config(config: Config, weights: tuple[Path | None, Path | None]) -> Config:
    """The run's config with the kept round's (detector, pose estimator) weights; None keeps the
    backend's default weights. A named activity checkpoint is made absolute too, so the file works
    from any folder. The refinement section is left at its defaults (not written)."""
    detector, pose = weights
    models = replace(config.models, detector_checkpoint=_absolute(detector), pose_checkpoint=_absolute(pose))
    checkpoint = config.activity.checkpoint
    activity = replace(config.activity, checkpoint=_absolute(Path(checkpoint)) if checkpoint else "")
    return replace(config, models=models, activity=activity, refinement=RefinementConfig())


def _header(run_dir: Path, iteration: int) -> list[str]:
    kept = ([f"# Kept: round {iteration}, its detector and pose estimator."] if iteration else
            ["# Kept: round 0, the initial models (no round improved on them); an empty checkpoint",
             "# is the backend's default weights."])
    path = os.path.abspath(run_dir / DEPLOY_FILE)
    return [f"# The live graph's parameters from the refinement run {os.path.abspath(run_dir)}.", *kept,
            "# Every other setting is the one the round was evaluated with. Start the graph with:",
            *(f"#   {command}" for command in deploy_commands(Path(path))), ""]


def deploy_commands(path: Path) -> list[str]:
    """The two ways to run the live graph on a deploy file."""
    return [f"ros2 launch hand_pose_refiner assembly.launch.py config_file:={path}",
            f"hand-pose-refiner run --config {path}"]


def write_deploy(run_dir: Path, config: Config, iteration: int,
                 weights: tuple[Path | None, Path | None]) -> Deployment:
    """Write ``run_dir/deploy.yaml`` (atomically) for round ``iteration`` with its ``weights``."""
    deployed = deploy_config(config, weights)
    path = Path(os.path.abspath(Path(run_dir) / DEPLOY_FILE))
    text = "\n".join(_header(Path(run_dir), iteration)) + commented_yaml(deployed, offline_sections=False)
    atomic_write_text(path, text)
    return Deployment(path, iteration, deployed)


def deployment_lines(deployment: Deployment) -> list[str]:
    """What ``refine`` prints at the end: the kept round, its weights, the commands that use them."""
    models = deployment.config.models
    default = "the backend's default weights"
    round_name = f"round {deployment.iteration}" if deployment.iteration else "round 0 (the initial models)"
    return [f"kept {round_name}: detector {models.detector_checkpoint or default}, "
            f"pose estimator {models.pose_checkpoint or default}",
            f"live graph parameters: {deployment.path}; run them with",
            *(f"  {command}" for command in deploy_commands(deployment.path))]
