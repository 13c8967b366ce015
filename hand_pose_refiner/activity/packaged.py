"""The activity model that ships with the package, and which file ``activity.checkpoint`` names.

The rule is that of ``models.detector_checkpoint``: an empty setting means the packaged default,
here the reach recogniser trained on all eight participants of the real reach-to-grasp
recordings (``scripts/train_default_activity.sh`` trains it again, byte for byte; what it was
trained on is in its metadata, see :func:`~hand_pose_refiner.activity.reach.checkpoint_training`).
"""

from __future__ import annotations

from pathlib import Path

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
