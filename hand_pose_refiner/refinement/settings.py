"""What a refinement run depends on: its inputs, rounds, fine-tuning and decision settings."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.rounds import DEFAULT_SCHEDULE, Thresholds


@dataclass(frozen=True)
class LabelledSet:
    """A COCO file with labelled hands, for PCK (``tip_first`` for RHD's finger order)."""

    path: Path
    tip_first: bool = False


@dataclass(frozen=True)
class RefineSettings:
    """Everything a refinement run depends on (stored in the state to refuse a mismatched resume)."""

    targets: tuple[InputSpec, ...]
    checks: tuple[InputSpec, ...] = ()
    labelled: tuple[LabelledSet, ...] = ()
    # Recordings the initial models already handle (bare hands): labelled once by them at the live
    # thresholds, mixed into every round's training set so that the models keep what they knew.
    anchors: tuple[InputSpec, ...] = ()
    # Anchor images per pseudo-labelled image in a round's training set: enough to keep the
    # initial models' hands, few enough that the cell's hands are still what is learnt.
    anchor_ratio: float = 3.0
    iterations: int = 3
    schedule: tuple[Thresholds, ...] = DEFAULT_SCHEDULE
    epochs: int = 2  # pose estimator
    batch_size: int = 8
    samples_per_image: int = 4
    learning_rate: float = 2e-5  # pose estimator
    detector_epochs: int = 12
    detector_learning_rate: float = 3e-4
    glove_probability: float = 0.5
    max_train_images_per_input: int = 60
    patience: int = 1
    min_improvement: float = 0.005
    # How far PCK on the labelled sets may fall below the initial models' in a kept round: not at
    # all by default (docs/design/pose_estimator_keeps_pck.md).
    max_pck_drop: float = 0.0
    max_check_drop: float = 0.05
    pck_alpha: float = 0.2
    seed: int = 0
    freeze_backbone: bool = True
    # Rounds whose pseudo-labels also come from a crop search over every target frame (a pose
    # estimator with that capability, SupportsCropSearch): crop sides as fractions of the image
    # height, each at four angles. See README.
    search_rounds: int = 0
    search_sizes: tuple[float, ...] = (0.22, 0.35, 0.55)
    # Pseudo-labels only from hands whose keypoints hold under turned, scaled and shifted crops
    # (a pose estimator with SupportsConsistencyCheck; others ignore it).
    consistency_check: bool = True
    # Fine-tune the pose estimator from the initial weights every round, not from the previous
    # round's: chained, each round's drift is the next one's start
    # (docs/design/pose_estimator_keeps_pck.md).
    pose_from_initial: bool = True
    # Keep the pose estimator's last epoch whose labelled PCK is not below the initial models'
    # (with labelled sets): the glove it learns early, the bare-hand wrist it loses late.
    keep_pck_epoch: bool = True

    def thresholds(self, iteration: int) -> Thresholds:
        """The schedule entry of round ``iteration`` (1-based; the last one repeats)."""
        return self.schedule[min(iteration, len(self.schedule)) - 1]

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the original (the iteration count may grow)."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), default=str))
        data.pop("iterations")
        return data


# An input's settings at their default values: a field added to InputSpec later (``offset``) is
# absent from the identity of a run folder made before it, and means its default there.
_INPUT_DEFAULTS: dict[str, Any] = json.loads(json.dumps(
    {item.name: item.default for item in fields(InputSpec) if item.default is not MISSING}, default=str))
_INPUT_ROLES = ("targets", "checks", "anchors")


def _inputs_without_defaults(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` with every input's settings that equal their defaults left out."""
    normalised = dict(identity)
    for role in _INPUT_ROLES:
        specs = normalised.get(role)
        if isinstance(specs, list):
            normalised[role] = [{key: value for key, value in spec.items()
                                 if key not in _INPUT_DEFAULTS or value != _INPUT_DEFAULTS[key]}
                                if isinstance(spec, dict) else spec for spec in specs]
    return normalised


def same_run(recorded: dict[str, Any], identity: dict[str, Any]) -> bool:
    """Whether a run folder whose state recorded ``recorded`` resumes with settings of ``identity``
    (:meth:`RefineSettings.identity`): equal, an input setting missing from ``recorded`` counting
    as its default."""
    return recorded == identity or _inputs_without_defaults(recorded) == _inputs_without_defaults(identity)
