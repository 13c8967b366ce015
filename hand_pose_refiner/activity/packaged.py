"""The activity model that ships with the package, which file ``activity.checkpoint`` names, and
the recogniser that file holds (one rule for the node, ``annotate`` and ``config check``).

The rule is that of ``models.detector_checkpoint``: an empty setting means the packaged default,
here the reach recogniser trained on all eight participants of the real reach-to-grasp
recordings (``scripts/train_default_activity.sh`` trains it again, byte for byte; what it was
trained on is in its metadata, see :func:`~hand_pose_refiner.activity.reach_checkpoint.checkpoint_training`).
"""

from __future__ import annotations

from pathlib import Path

from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.reach import ReachRecognizer
from hand_pose_refiner.activity.reach_checkpoint import FORMAT_PREFIX, checkpoint_format
from hand_pose_refiner.activity.reach_model import ReachModel
from hand_pose_refiner.activity.recognizer import ActivityRecognizer
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ActivityCheckpointError

PACKAGED_REACH_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "reach_rtg_object_size.safetensors"


def activity_checkpoint(config: ActivityConfig) -> Path:
    """The checkpoint the activity recogniser loads: ``config.checkpoint``, or the packaged reach
    model when that is empty (an :class:`ActivityCheckpointError` if the install lacks it)."""
    if config.checkpoint:
        return Path(config.checkpoint)
    if not PACKAGED_REACH_CHECKPOINT.is_file():
        raise ActivityCheckpointError(
            f"the packaged reach model {PACKAGED_REACH_CHECKPOINT} is missing from this install: "
            "reinstall the package, or set activity.checkpoint to a model of your own")
    return PACKAGED_REACH_CHECKPOINT


def load_recognizer(config: ActivityConfig) -> tuple[ActivityRecognizer | ReachRecognizer, Path]:
    """The recogniser ``config`` names and its file: a reach recogniser or a window classifier,
    told apart by the checkpoint's format (any reach format goes to ReachModel.load, so that it
    says what is wrong with an old one). Raises ActivityCheckpointError or FileNotFoundError."""
    checkpoint = activity_checkpoint(config)
    if (checkpoint_format(checkpoint) or "").startswith(FORMAT_PREFIX):
        return ReachRecognizer(ReachModel.load(checkpoint)), checkpoint
    return ActivityRecognizer(config, ActivityModel.load(checkpoint, config)), checkpoint
