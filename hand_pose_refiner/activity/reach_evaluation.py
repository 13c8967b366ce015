"""Evaluating a reach model on prepared recordings: the network over each test recording with
the *same* decision rules as the online :class:`~hand_pose_refiner.activity.reach.ReachRecognizer`
(onset event, size said once confident), then every labelled frame scored.

A frame without a filtered pose (rejected, or an unusable stamp) keeps the previous decision,
and frames before the first decision count as idle. Grasp size is scored as live: the person's
:class:`~hand_pose_refiner.activity.reach_size_classifier.SizeCalibration` is fed by the reach
ends the *model* detected in their earlier recordings, never by their labels; the labelled reach
window is used only to score ("top-1 at the end of the reach" reads the size probabilities at the
last frame at or before the labelled end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.activity.reach import ReachDecider, ReachSettings
from hand_pose_refiner.activity.reach_data import PreparedSequence
from hand_pose_refiner.activity.reach_features import PHASE_NAMES
from hand_pose_refiner.activity.reach_model import ReachModel, ReachOutput
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration
from hand_pose_refiner.activity.rtg_dataset import SIZE_NAMES, UNLABELLED, RtgSequence, StampCounts

FRACTIONS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


@dataclass
class SequencePrediction:
    """Decisions for every frame of one recording (held over frames without a filtered pose)."""

    sequence: RtgSequence
    phase: npt.NDArray[np.uint8]
    time_to_grasp_s: npt.NDArray[np.float32]
    size_scores: npt.NDArray[np.float32]
    onset_times_s: list[float] = field(default_factory=list)
    said_size: str = ""
    said_size_time_s: float = float("nan")
    raw_time_to_grasp_s: npt.NDArray[np.float32] | None = None


@torch.no_grad()
def predict_sequence(
    model: ReachModel,
    prepared: PreparedSequence,
    settings: ReachSettings | None = None,
    calibration: SizeCalibration | None = None,
) -> SequencePrediction:
    """Run the network over one prepared recording and apply the online decision rules.

    ``calibration``: the person's size statistics from their earlier recordings; the reach end
    the model detects here is added to it, as :class:`ReachRecognizer` does (None: a fresh one,
    i.e. a person seen for the first time).
    """
    calibration = calibration if calibration is not None else SizeCalibration()
    sequence = prepared.sequence
    count = len(sequence)
    prediction = SequencePrediction(
        sequence,
        np.zeros(count, np.uint8),
        np.full(count, np.nan, np.float32),
        np.full((count, len(model.size_names)), 1 / len(model.size_names), np.float32),
    )
    if len(prepared.rows) == 0:
        return prediction
    phase_logits, time_to_grasp = model(torch.from_numpy(prepared.features)[None])
    phase_p = torch.softmax(phase_logits[0], -1).numpy()
    size_p = np.zeros((len(prepared.rows), len(model.size_names)), np.float32)
    ttg = time_to_grasp[0].numpy()
    decider = ReachDecider(model.size_names, settings or ReachSettings())
    row_of_frame = np.full(count, -1)
    row_of_frame[prepared.rows] = np.arange(len(prepared.rows))
    held = np.maximum.accumulate(row_of_frame)  # the newest decision at or before each frame
    decisions = []
    for row, frame in enumerate(prepared.rows):
        stamp_ns = sequence.stamp_ns(int(frame))
        size_row = prepared.size_features[row : row + 1]
        size_p[row] = model.size_classifier.probabilities(size_row, calibration)[0]
        decision = decider.decide(stamp_ns, ReachOutput(phase_p[row], size_p[row], float(ttg[row])))
        if decision.reach_end:
            calibration.add(prepared.size_features[row])
        decisions.append(decision)
        if decision.onset:
            prediction.onset_times_s.append(float(sequence.time_s[frame]))
        if decision.grasp_size and not prediction.said_size:
            prediction.said_size, prediction.said_size_time_s = (
                decision.grasp_size,
                float(sequence.time_s[frame]),
            )
    phases = np.array([d.phase for d in decisions], np.uint8)
    ttgs = np.array([d.time_to_grasp_s for d in decisions], np.float32)
    known = held >= 0
    prediction.phase[known] = phases[held[known]]
    prediction.time_to_grasp_s[known] = ttgs[held[known]]
    prediction.size_scores[known] = size_p[held[known]]
    prediction.raw_time_to_grasp_s = np.where(known, ttg[np.maximum(held, 0)], np.nan).astype(np.float32)
    return prediction


@dataclass(frozen=True)
class ReachScores:
    """What one fold (or the mean of folds) measured; times in milliseconds."""

    phase_macro_f1: float
    phase_f1: tuple[float, ...]
    phase_confusion: npt.NDArray[np.int64]
    onset_median_delay_ms: float
    onset_missed: int
    false_onsets_per_sequence: float
    time_to_grasp_median_error_ms: float
    size_accuracy_at_end: float
    size_accuracy_by_fraction: tuple[float, ...]
    size_said_fraction: float
    size_said_accuracy: float
    size_said_median_reach_fraction: float
    size_confusion: npt.NDArray[np.int64]
    size_confident_accuracy_at_end: float
    size_confident_fraction_at_end: float
    sequences: int
    frames: int
    stamp_counts: StampCounts

    def as_dict(self) -> dict[str, object]:
        return {
            "phase_macro_f1": self.phase_macro_f1,
            "phase_f1": dict(zip(PHASE_NAMES, self.phase_f1, strict=True)),
            "phase_confusion": self.phase_confusion.tolist(),
            "onset_median_delay_ms": self.onset_median_delay_ms,
            "onset_missed": self.onset_missed,
            "false_onsets_per_sequence": self.false_onsets_per_sequence,
            "time_to_grasp_median_error_ms_at_half_reach": self.time_to_grasp_median_error_ms,
            "size_accuracy_at_reach_end": self.size_accuracy_at_end,
            "size_accuracy_by_reach_fraction": dict(
                zip(map(str, FRACTIONS), self.size_accuracy_by_fraction, strict=True)
            ),
            "size_said_fraction_of_sequences": self.size_said_fraction,
            "size_said_accuracy": self.size_said_accuracy,
            "size_said_median_reach_fraction": self.size_said_median_reach_fraction,
            "size_confusion": self.size_confusion.tolist(),
            "size_confident_accuracy_at_reach_end": self.size_confident_accuracy_at_end,
            "size_confident_fraction_at_reach_end": self.size_confident_fraction_at_end,
            "sequences": self.sequences,
            "frames": self.frames,
            "stamps": {
                "repeated": self.stamp_counts.repeated,
                "corrupt": self.stamp_counts.corrupt,
                "gaps_over_50ms": self.stamp_counts.gaps,
            },
        }


def _frame_at(sequence: RtgSequence, time_s: float) -> int:
    """The last usable frame at or before ``time_s`` (the first usable frame if none is)."""
    usable = np.flatnonzero(sequence.usable)
    position = int(np.searchsorted(sequence.time_s[usable], time_s, side="right")) - 1
    return int(usable[max(position, 0)])


def confusion(truth: npt.ArrayLike, predicted: npt.ArrayLike, classes: int) -> npt.NDArray[np.int64]:
    """``(classes, classes)`` counts, rows the truth, columns the prediction."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def f1_scores(matrix: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    tp = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (matrix.sum(axis=0) + matrix.sum(axis=1))
    return np.nan_to_num(f1)


def score_predictions(
    predictions: Sequence[SequencePrediction], onset_tolerance_s: float = 0.3, confidence: float = 0.8
) -> ReachScores:
    """Score a fold's predictions.

    Size calibration: of the recordings whose top size probability at the labelled reach end is
    at least ``confidence``, the fraction (coverage) and how many of those are right.

    Onsets: the first onset event from ``onset_tolerance_s`` before the labelled onset up to the
    labelled end of the reach is the detection (its delay is measured); every other onset event
    of the recording is a false onset; a recording without a detection has a missed onset.
    """
    truths, guesses = [], []
    delays, false_onsets, missed = [], 0, 0
    ttg_errors = []
    size_truth, size_end, size_end_confidence = [], [], []
    by_fraction = np.zeros(len(FRACTIONS))
    said, said_right, said_fraction = 0, 0, []
    for prediction in predictions:
        sequence = prediction.sequence
        labelled = sequence.phase != UNLABELLED
        truths.append(sequence.phase[labelled])
        guesses.append(prediction.phase[labelled])
        onsets = np.array(prediction.onset_times_s)
        window = (onsets >= sequence.onset_s - onset_tolerance_s) & (onsets <= sequence.end_s)
        if window.any():
            delays.append(onsets[window][0] - sequence.onset_s)
            false_onsets += len(onsets) - 1
        else:
            missed += 1
            false_onsets += len(onsets)
        duration = sequence.end_s - sequence.onset_s
        half = _frame_at(sequence, sequence.onset_s + 0.5 * duration)
        if prediction.raw_time_to_grasp_s is not None and np.isfinite(prediction.raw_time_to_grasp_s[half]):
            ttg_errors.append(
                abs(prediction.raw_time_to_grasp_s[half] - (sequence.end_s - sequence.time_s[half]))
            )
        size_truth.append(sequence.object_size)
        end_scores = prediction.size_scores[_frame_at(sequence, sequence.end_s)]
        size_end.append(int(np.argmax(end_scores)))
        size_end_confidence.append(float(np.max(end_scores)))
        for k, fraction in enumerate(FRACTIONS):
            frame = _frame_at(sequence, sequence.onset_s + fraction * duration)
            by_fraction[k] += int(np.argmax(prediction.size_scores[frame])) == sequence.object_size
        if prediction.said_size:
            said += 1
            said_right += prediction.said_size == SIZE_NAMES[sequence.object_size]
            said_fraction.append((prediction.said_size_time_s - sequence.onset_s) / max(duration, 1e-6))
    confident = np.array(size_end_confidence) >= confidence
    right = np.array(size_end) == np.array(size_truth)
    phase_matrix = confusion(np.concatenate(truths), np.concatenate(guesses), len(PHASE_NAMES))
    phase_f1 = f1_scores(phase_matrix)
    count = len(predictions)
    return ReachScores(
        float(phase_f1.mean()),
        tuple(float(v) for v in phase_f1),
        phase_matrix,
        float(np.median(delays) * 1e3) if delays else float("nan"),
        missed,
        false_onsets / max(count, 1),
        float(np.median(ttg_errors) * 1e3) if ttg_errors else float("nan"),
        float(np.mean(np.array(size_end) == np.array(size_truth))) if count else float("nan"),
        tuple(float(v) for v in by_fraction / max(count, 1)),
        said / max(count, 1),
        said_right / max(said, 1),
        float(np.median(said_fraction)) if said_fraction else float("nan"),
        confusion(size_truth, size_end, 3),
        float(right[confident].mean()) if confident.any() else float("nan"),
        float(confident.mean()) if count else float("nan"),
        count,
        int(sum(len(t) for t in truths)),
        sum((p.sequence.stamp_counts for p in predictions), StampCounts()),
    )


def summary(scores: ReachScores) -> str:
    return (
        f"phase macro-F1 {scores.phase_macro_f1:.3f}, onset delay {scores.onset_median_delay_ms:.0f} ms "
        f"(missed {scores.onset_missed}, false {scores.false_onsets_per_sequence:.3f}/seq), time to grasp "
        f"error {scores.time_to_grasp_median_error_ms:.0f} ms, size at reach end "
        f"{scores.size_accuracy_at_end:.3f} ({scores.sequences} sequences)"
    )
