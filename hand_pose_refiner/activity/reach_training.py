"""Training and evaluating the reach recogniser on labelled recordings (e.g. the RtG dataset).

Recordings first pass through the live filter chain (online mode, the node's config), then
:class:`~hand_pose_refiner.activity.reach_features.ReachFeatures`, exactly as live poses do; the
prepared feature streams are reused by every fold. Evaluation runs the trained network over each
test recording and the *same* decision rules as the online :class:`ReachRecognizer` (onset
event, size said once confident), then scores every labelled frame: a frame without a filtered
pose (rejected, or an unusable stamp) keeps the previous decision, and frames before the first
decision count as idle.

Grasp size, as live: one :class:`~hand_pose_refiner.activity.reach.SizeCalibration` per held-out
person, fed by the reach ends the *model* detected in that person's earlier recordings (taken in
a fixed shuffled order, a mix of sizes), never by their labels. The labelled reach window is
used only to score ("top-1 at the end of the reach" reads the size probabilities at the last
frame at or before the labelled end), and, for the *training* people, to fit the classifier.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hand_pose_refiner.activity.reach import (
    ReachDecider,
    ReachModel,
    ReachOutput,
    ReachSettings,
    SizeCalibration,
    SizeClassifier,
)
from hand_pose_refiner.activity.reach_features import (
    NUM_FEATURES,
    NUM_SIZE_FEATURES,
    PHASE_NAMES,
    REACH,
    ReachFeatures,
    frame_hand_features,
)
from hand_pose_refiner.activity.rtg_dataset import (
    SIZE_NAMES,
    UNLABELLED,
    RtgSequence,
    StampCounts,
    participants_of,
)
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode

FRACTIONS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


@dataclass(frozen=True)
class PreparedSequence:
    """One recording after the filters: a feature row per filtered pose, and its labels.

    ``rows`` index the recording's frames (``sequence.time_s``) that produced a filtered pose;
    ``size_features`` are the grasp-size features of the same poses.
    """

    sequence: RtgSequence
    features: npt.NDArray[np.float32]
    rows: npt.NDArray[np.int64]
    filter_stats: dict[str, dict[str, dict[str, int]]]
    size_features: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, NUM_SIZE_FEATURES), np.float32)
    )

    @property
    def end_row(self) -> int:
        """The last pose at or before the labelled end of the reach (the first pose if none is)."""
        times = self.sequence.time_s[self.rows]
        return max(int(np.searchsorted(times, self.sequence.end_s, side="right")) - 1, 0)

    @property
    def phase(self) -> npt.NDArray[np.uint8]:
        return self.sequence.phase[self.rows]

    @property
    def time_to_grasp_s(self) -> npt.NDArray[np.float32]:
        return (self.sequence.end_s - self.sequence.time_s[self.rows]).astype(np.float32)


def prepare_sequence(sequence: RtgSequence, config: Config) -> PreparedSequence:
    """Run one recording's usable frames through the online filters and the feature code."""
    pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
    index_of_stamp: dict[int, int] = {}
    features: dict[int, ReachFeatures] = {}
    rows, vectors, sizes = [], [], []

    def take(frames: Sequence) -> None:
        for frame in frames:
            if len(frame) == 0:
                continue
            hand = int(np.argmax(frame.keypoint_scores.sum(axis=1)))
            track = features.setdefault(int(frame.track_ids[hand]), ReachFeatures())
            rows.append(index_of_stamp[frame.stamp_ns])
            vectors.append(frame_hand_features(frame, hand, track))
            sizes.append(track.size_features)

    for index, frame in sequence.frames():
        index_of_stamp[frame.stamp_ns] = index
        take(pipeline.push(frame))
    take(pipeline.flush())
    return PreparedSequence(
        sequence,
        np.array(vectors, np.float32).reshape(-1, NUM_FEATURES),
        np.array(rows, np.int64),
        pipeline.stats.as_dict(),
        np.array(sizes, np.float32).reshape(-1, NUM_SIZE_FEATURES),
    )


def prepare_sequences(
    sequences: Sequence[RtgSequence],
    config: Config,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> list[PreparedSequence]:
    """:func:`prepare_sequence` of every recording, in order (``jobs`` > 1: that many processes;
    each recording is filtered on its own, so the result does not depend on ``jobs``)."""
    if jobs > 1:
        with _pool(jobs) as pool:
            prepared = pool.starmap(prepare_sequence, [(s, config) for s in sequences], chunksize=8)
        if progress is not None:
            progress(len(prepared), len(sequences))
        return prepared
    prepared = []
    for number, sequence in enumerate(sequences, 1):
        prepared.append(prepare_sequence(sequence, config))
        if progress is not None:
            progress(number, len(sequences))
    return prepared


def _pool(jobs: int) -> multiprocessing.pool.Pool:
    """Worker processes forked from this one (the prepared recordings are inherited, not sent)."""
    return multiprocessing.get_context("fork").Pool(jobs)


@dataclass(frozen=True)
class ReachTrainSettings:
    """How to train the reach model (defaults: about 70 s per 600 recordings on one CPU thread).

    The jitters shift the palm's image position and scale its size per recording: camera
    placement and distance differ between people, and the model must not learn them.
    """

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    hidden: int = 64
    seed: int = 0
    threads: int = 1
    time_loss_weight: float = 2.0
    position_jitter: float = 0.1
    scale_jitter: float = 0.2
    # The size classifier: L2 strength (as scikit-learn's C: smaller is stronger; 0.3 was best
    # of 0.03..1 leave-one-subject-out, though all were within 0.01) and how many reaches the
    # training people's average counts as in a new person's statistics (1..10 within 0.01).
    size_c: float = 0.3
    size_prior_reaches: float = 3.0


def _batch(
    prepared: Sequence[PreparedSequence], rng: np.random.Generator | None, settings: ReachTrainSettings
) -> tuple[torch.Tensor, ...]:
    length = max(len(p.rows) for p in prepared)
    features = np.zeros((len(prepared), length, NUM_FEATURES), np.float32)
    phase = np.full((len(prepared), length), -100, np.int64)
    time_to_grasp = np.zeros((len(prepared), length), np.float32)
    for i, item in enumerate(prepared):
        count = len(item.rows)
        rows = item.features.copy()
        if rng is not None:  # camera placement and distance differ between people
            tail = 3 * 21
            present = rows[:, tail + 2] > 0
            rows[present, tail : tail + 2] += rng.uniform(-1, 1, 2) * settings.position_jitter
            rows[present, tail + 2] *= np.exp(rng.uniform(-1, 1) * settings.scale_jitter)
        features[i, :count] = rows
        labels = item.phase.astype(np.int64)
        phase[i, :count] = np.where(labels == UNLABELLED, -100, labels)
        time_to_grasp[i, :count] = np.where(labels == REACH, item.time_to_grasp_s, np.nan)
    return torch.from_numpy(features), torch.from_numpy(phase), torch.from_numpy(time_to_grasp)


def train_reach_model(
    train: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    size_names: Sequence[str] = ("S", "M", "L"),
    log: Callable[[str], None] | None = None,
) -> ReachModel:
    """Train the phase and time-to-grasp network on whole recordings, then the size classifier."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, settings.threads))
    rng = np.random.default_rng(settings.seed)
    model = ReachModel(size_names, settings.hidden)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    steps = settings.epochs * int(np.ceil(len(train) / settings.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=steps)
    counts = np.bincount(np.concatenate([p.phase[p.phase != UNLABELLED] for p in train]), minlength=3)
    phase_loss = nn.CrossEntropyLoss(
        weight=torch.tensor(np.sqrt(counts.sum() / np.maximum(counts, 1)), dtype=torch.float32),
        ignore_index=-100,
    )
    model.train()
    for epoch in range(settings.epochs):
        order = rng.permutation(len(train))
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            features, phase, time_to_grasp = _batch(
                [train[i] for i in order[start : start + settings.batch_size]], rng, settings
            )
            phase_logits, predicted_time = model(features)
            reach = torch.isfinite(time_to_grasp)
            loss = phase_loss(phase_logits.reshape(-1, len(PHASE_NAMES)), phase.reshape(-1))
            if reach.any():
                loss = loss + settings.time_loss_weight * nn.functional.smooth_l1_loss(
                    predicted_time[reach], time_to_grasp[reach], beta=0.05
                )
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        if log is not None:
            batches = np.ceil(len(order) / settings.batch_size)
            log(f"epoch {epoch + 1}/{settings.epochs}: loss {total / batches:.4f}")
    fit_size_classifier(model.size_classifier, train, settings, log)
    return model.eval()


def _reach_end_features(
    prepared: Sequence[PreparedSequence],
) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]]:
    """Per training person: size features at the labelled reach end of each recording, sizes."""
    people: dict[str, tuple[list, list]] = {}
    for item in prepared:
        if len(item.rows) == 0:
            continue
        features, sizes = people.setdefault(item.sequence.participant, ([], []))
        features.append(item.size_features[item.end_row])
        sizes.append(item.sequence.object_size)
    return {p: (np.array(f, np.float64), np.array(y, np.int64)) for p, (f, y) in people.items()}


def _fit_softmax(
    features: npt.NDArray[np.float64], sizes: npt.NDArray[np.int64], classes: int, c: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Multinomial logistic regression (L-BFGS; L2 on the weights as scikit-learn's ``C``)."""
    x = torch.from_numpy(features)
    y = torch.from_numpy(sizes)
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, y) + (weight**2).sum() / (2 * c * len(y))
        loss.backward()
        return loss

    optimiser.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def _zscore(features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-9)


def fit_size_classifier(
    classifier: SizeClassifier,
    train: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    log: Callable[[str], None] | None = None,
) -> None:
    """Fit the size classifier on the training people, and its temperature on held-out ones.

    Weights: each training person's reach-end size features z-scored by that person's own mean
    and spread. Prior: the average of the people's means and variances. Temperature: every
    training person is held out once (inner leave-one-person-out): a classifier fitted on the
    others scores that person's reaches as a new person's would be scored (in a shuffled
    order, each normalised by the reaches before it, shrunk towards the others' prior); the
    temperature minimises the negative log-likelihood of all those held-out scores.
    """
    people = _reach_end_features(train)
    classes = classifier.weight.shape[0]

    def prior(names: Sequence[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return (
            np.mean([people[p][0].mean(axis=0) for p in names], axis=0),
            np.mean([people[p][0].var(axis=0) for p in names], axis=0),
        )

    names = sorted(people)
    features = np.concatenate([_zscore(people[p][0]) for p in names])
    sizes = np.concatenate([people[p][1] for p in names])
    weight, bias = _fit_softmax(features, sizes, classes, settings.size_c)
    mean, var = prior(names)
    held_logits, held_sizes = [], []
    for out in names if len(names) > 1 else []:
        rest = [p for p in names if p != out]
        inner = SizeClassifier(classes, features.shape[1])
        w, b = _fit_softmax(
            np.concatenate([_zscore(people[p][0]) for p in rest]),
            np.concatenate([people[p][1] for p in rest]),
            classes,
            settings.size_c,
        )
        inner_mean, inner_var = prior(rest)
        _set_size_classifier(inner, w, b, inner_mean, inner_var, settings.size_prior_reaches, 1.0)
        calibration = SizeCalibration(features.shape[1])
        x, y = people[out]
        for i in np.random.default_rng(settings.seed).permutation(len(y)):
            held_logits.append(inner.logits(inner.normalised(x[i : i + 1], calibration))[0])
            held_sizes.append(y[i])
            calibration.add(x[i])
    temperature = _fit_temperature(np.array(held_logits), np.array(held_sizes)) if held_logits else 1.0
    _set_size_classifier(classifier, weight, bias, mean, var, settings.size_prior_reaches, temperature)
    if log is not None:
        log(f"size classifier: {len(sizes)} reaches of {len(names)} people, temperature {temperature:.2f}")


def _fit_temperature(logits: npt.NDArray[np.float64], sizes: npt.NDArray[np.int64]) -> float:
    """The temperature (0.25..8, log grid) with the least negative log-likelihood."""
    best, best_nll = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.25), np.log(8.0), 121)):
        scaled = logits / temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(scaled).sum(axis=1)) - scaled[np.arange(len(sizes)), sizes]))
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def _set_size_classifier(
    classifier: SizeClassifier,
    weight: npt.NDArray[np.float64],
    bias: npt.NDArray[np.float64],
    mean: npt.NDArray[np.float64],
    var: npt.NDArray[np.float64],
    prior_reaches: float,
    temperature: float,
) -> None:
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(weight))
        classifier.bias.copy_(torch.from_numpy(bias))
        classifier.prior_mean.copy_(torch.from_numpy(mean))
        classifier.prior_var.copy_(torch.from_numpy(var))
        classifier.prior_reaches.fill_(prior_reaches)
        classifier.temperature.fill_(temperature)


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
    position = np.searchsorted(sequence.time_s[usable], time_s, side="right") - 1
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
            with _pool(min(jobs, len(participants))) as pool:
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


def summary(scores: ReachScores) -> str:
    return (
        f"phase macro-F1 {scores.phase_macro_f1:.3f}, onset delay {scores.onset_median_delay_ms:.0f} ms "
        f"(missed {scores.onset_missed}, false {scores.false_onsets_per_sequence:.3f}/seq), time to grasp "
        f"error {scores.time_to_grasp_median_error_ms:.0f} ms, size at reach end "
        f"{scores.size_accuracy_at_end:.3f} ({scores.sequences} sequences)"
    )


def plot_size_by_fraction(result: CrossValidation, path: str | Path) -> Path:
    """Grasp-size accuracy against the fraction of the reach seen, per fold and their mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 4))
    for scores in result.folds.values():
        axes.plot(FRACTIONS, scores.size_accuracy_by_fraction, color="0.75", linewidth=1)
    axes.plot(FRACTIONS, result.mean_by_fraction(), color="C0", linewidth=2.5, label="mean of folds")
    axes.axhline(1 / 3, color="C3", linestyle="--", label="chance")
    axes.set_xlabel("fraction of the reach seen")
    axes.set_ylabel("grasp size top-1")
    axes.set_ylim(0, 1)
    axes.set_title("grasp size, leave-one-subject-out (grey: single folds)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
