"""Leave-one-subject-out cross-validation of the reach model: train on every participant but
one, test on that one, every participant once; folds optionally in forked processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.activity.reach import ReachSettings
from hand_pose_refiner.activity.reach_data import PreparedSequence, fork_pool
from hand_pose_refiner.activity.reach_evaluation import (
    FRACTIONS,
    ReachScores,
    SequencePrediction,
    predict_sequence,
    score_predictions,
    summary,
)
from hand_pose_refiner.activity.reach_fit import ReachTrainSettings
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration
from hand_pose_refiner.activity.reach_training import train_reach_model
from hand_pose_refiner.activity.rtg_dataset import participants_of


@dataclass
class CrossValidation:
    """Leave-one-subject-out results: one :class:`ReachScores` per held-out participant."""

    folds: dict[str, ReachScores]
    pooled: ReachScores
    seconds: float

    def mean(self, name: str) -> float:
        values = np.array([getattr(scores, name) for scores in self.folds.values()], np.float64)
        # a figure no fold has (no confident size, no onset in a quick run) is NaN, not a warning
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def mean_by_fraction(self) -> npt.NDArray[np.float64]:
        return np.mean([scores.size_accuracy_by_fraction for scores in self.folds.values()], axis=0)

    def as_dict(self) -> dict[str, object]:
        names = (
            "phase_macro_f1",
            "onset_median_delay_ms",
            "false_onsets_per_sequence",
            "time_to_grasp_median_error_ms",
            "size_accuracy_at_end",
            "size_confident_accuracy_at_end",
            "size_confident_fraction_at_end",
            "size_said_accuracy",
            "size_said_fraction",
        )
        return {
            "protocol": "leave-one-subject-out",
            "size_evaluation": "top-1 of the size probabilities at the last frame at or before the labelled "
            "reach end; each held-out person's size statistics come only from the reach ends the model "
            "detected in their earlier recordings (seeded shuffled order)",
            "seconds": self.seconds,
            "mean_of_folds": {name: self.mean(name) for name in names}
            | {
                "size_accuracy_by_reach_fraction": dict(
                    zip(map(str, FRACTIONS), self.mean_by_fraction().tolist(), strict=True)
                )
            },
            "pooled": self.pooled.as_dict(),
            "folds": {participant: scores.as_dict() for participant, scores in self.folds.items()},
        }


def leave_one_subject_out(
    prepared: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    decisions: ReachSettings | None = None,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> CrossValidation:
    """Train on all participants but one, test on that one; every participant once.

    ``jobs`` > 1 runs that many folds at a time in forked processes (one torch thread each; the
    same figures as one after the other, since every fold seeds itself).
    """
    started = time.perf_counter()
    participants = participants_of([p.sequence for p in prepared])
    folds: dict[str, ReachScores] = {}
    everything: list[SequencePrediction] = []
    arguments = [(prepared, participant, settings, decisions) for participant in participants]
    if jobs > 1:
        global _FORKED  # read by the forked workers: the recordings are inherited, not sent
        _FORKED = prepared
        try:
            with fork_pool(min(jobs, len(participants))) as pool:
                results = pool.imap(_forked_fold, [(p, settings, decisions) for p in participants])
                for participant, predictions in zip(participants, results, strict=True):
                    _collect(participant, predictions, folds, everything, log)
        finally:
            _FORKED = []
    else:
        for args in arguments:
            _collect(args[1], _fold(*args), folds, everything, log)
    return CrossValidation(folds, score_predictions(everything), time.perf_counter() - started)


_FORKED: Sequence[PreparedSequence] = []


def _forked_fold(args: tuple[str, ReachTrainSettings, ReachSettings | None]) -> list[SequencePrediction]:
    return _fold(_FORKED, *args)


def _fold(
    prepared: Sequence[PreparedSequence],
    participant: str,
    settings: ReachTrainSettings,
    decisions: ReachSettings | None,
) -> list[SequencePrediction]:
    """One fold: train without ``participant``, predict their recordings."""
    train = [p for p in prepared if p.sequence.participant != participant]
    test = [p for p in prepared if p.sequence.participant == participant]
    model = train_reach_model(train, settings)
    # the person's recordings in a shuffled order (the recorded order is not published); the
    # size statistics carry from one recording to the next, as they do live
    calibration = SizeCalibration()
    order = np.random.default_rng(settings.seed).permutation(len(test))
    return [predict_sequence(model, test[i], decisions, calibration) for i in order]


def _collect(
    participant: str,
    predictions: list[SequencePrediction],
    folds: dict[str, ReachScores],
    everything: list[SequencePrediction],
    log: Callable[[str], None] | None,
) -> None:
    everything.extend(predictions)
    folds[participant] = score_predictions(predictions)
    if log is not None:
        log(f"{participant}: {summary(folds[participant])}")
