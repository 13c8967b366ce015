"""Training the reach recogniser on labelled recordings (e.g. the RtG dataset): the network
(:mod:`.reach_fit`), then the grasp-size classifier (:mod:`.reach_calibration`).

Recordings are prepared by :mod:`.reach_data`; a trained model is evaluated by
:mod:`.reach_evaluation` and cross-validated by :mod:`.reach_cross_validation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hand_pose_refiner.activity.reach_calibration import fit_size_classifier
from hand_pose_refiner.activity.reach_data import PreparedSequence
from hand_pose_refiner.activity.reach_fit import ReachTrainSettings, fit_network
from hand_pose_refiner.activity.reach_model import ReachModel


def train_reach_model(
    train: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    size_names: Sequence[str] = ("S", "M", "L"),
    log: Callable[[str], None] | None = None,
) -> ReachModel:
    """Train the phase and time-to-grasp network on whole recordings, then the size classifier."""
    model = fit_network(train, settings, size_names, log)
    fit_size_classifier(model.size_classifier, train, settings, log)
    return model.eval()
