"""The persisted state of a refinement run (``RUN/state.json``): typed, read and written here only.

The file holds the format version, the options the run was made with (to refuse a mismatched
resume), every finished step with its result, and once the run ends, its outcome. Each step's
result is a dataclass (:class:`EvaluateResult`, :class:`AnchorLabelsResult`,
:class:`PseudoLabelsResult`, :class:`FineTuneResult`); other modules read them through
:class:`RunState`'s accessors, never by step-name strings.

The JSON layout is that of state format 4, field for field, so that run folders made before the
results were typed resume as they are. A field missing from a result (a state written by hand,
or before the field existed) reads as its default.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hand_pose_refiner.atomic import atomic_write_json
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement.rounds import RoundMeasures, Thresholds

STATE_FILE = "state.json"
# 2: detector targets follow the pseudo-labels' palm convention, anchor recordings. 3: a round
# starts from the best round before it; the recurring-object filter leaves neighbouring stills
# out. 4: the pose estimator of every round is fine-tuned from the initial weights and keeps
# its last epoch that keeps labelled PCK. An older run's finished steps were made otherwise, so
# it is not resumed.
STATE_FORMAT = 4

Json = dict[str, Any]  # a JSON object as json.loads gives it
# A figure that may be undefined (no frames, no hands): NaN in a fresh result, None once read back
# (the state is written with NaN as null).
Figure = float | None
Network = Literal["detector", "estimator"]
NETWORKS: tuple[Network, ...] = ("detector", "estimator")


def _pick(data: Json, names: tuple[str, ...]) -> Json:
    return {name: data[name] for name in names if name in data}


def _number(value: Figure) -> float:
    return math.nan if value is None else float(value)


@dataclass
class InputRecord:
    """One input of a replay: its counts and rates, or the error that stopped it."""

    path: str
    frames: int = 0
    raw_hands: int = 0
    accepted_hands: int = 0
    frames_with_hands: int = 0
    detection_rate: Figure = math.nan
    mean_keypoint_confidence: Figure = math.nan
    error: str | None = None

    FIELDS = ("path", "frames", "raw_hands", "accepted_hands", "frames_with_hands", "detection_rate",
              "mean_keypoint_confidence", "error")

    @classmethod
    def from_json(cls, data: Json) -> InputRecord:
        return cls(**_pick(data, cls.FIELDS))

    def to_json(self) -> Json:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass
class ReplayRecord:
    """A replay of a step: totals over its inputs, each input, and the rejections per filter rule."""

    out: str = ""
    frames: int = 0
    raw_hands: int = 0
    accepted_hands: int = 0
    frames_with_raw_hands: int = 0
    frames_with_hands: int = 0
    detection_rate: Figure = math.nan
    raw_detection_rate: Figure = math.nan
    mean_keypoint_confidence: Figure = math.nan
    seconds: Figure = 0.0
    frames_per_s: Figure = math.nan
    skipped_frames: dict[str, int] = field(default_factory=dict)
    inputs: list[InputRecord] = field(default_factory=list)
    failed_inputs: list[dict[str, str]] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=dict)

    # In the order the file has always had them.
    KEYS = ("out", "frames", "raw_hands", "accepted_hands", "frames_with_raw_hands", "frames_with_hands",
            "detection_rate", "raw_detection_rate", "mean_keypoint_confidence", "seconds", "frames_per_s",
            "skipped_frames", "inputs", "failed_inputs", "rejections")

    @classmethod
    def from_json(cls, data: Json) -> ReplayRecord:
        scalars = _pick(data, tuple(key for key in cls.KEYS if key != "inputs"))
        return cls(**scalars, inputs=[InputRecord.from_json(item) for item in data.get("inputs", [])])

    def to_json(self) -> Json:
        return {key: [item.to_json() for item in self.inputs] if key == "inputs" else getattr(self, key)
                for key in self.KEYS}


@dataclass
class LabelledPck:
    """PCK of the whole pipeline on the labelled images: ``hands`` labelled, ``found`` matched."""

    pck: Figure
    hands: int = 0
    found: int = 0
    alpha: float | None = None  # absent when there was no labelled hand

    @classmethod
    def from_json(cls, data: Json) -> LabelledPck:
        return cls(**_pick(data, ("pck", "hands", "found", "alpha")))

    def to_json(self) -> Json:
        data: Json = {"pck": self.pck, "hands": self.hands, "found": self.found}
        if self.alpha is not None:
            data["alpha"] = self.alpha
        return data


@dataclass
class EvaluateResult:
    """``iter{k}/evaluate``: the targets (and check recordings) replayed at the reference thresholds,
    PCK on the labelled sets; ``measure`` is the targets' detection rate."""

    measure: Figure = None
    targets: ReplayRecord = field(default_factory=ReplayRecord)
    checks: ReplayRecord | None = None
    pck: LabelledPck | None = None

    @classmethod
    def from_json(cls, data: Json) -> EvaluateResult:
        return cls(measure=data.get("measure"), targets=ReplayRecord.from_json(data.get("targets", {})),
                   checks=ReplayRecord.from_json(data["checks"]) if "checks" in data else None,
                   pck=LabelledPck.from_json(data["pck"]) if "pck" in data else None)

    def to_json(self) -> Json:
        data: Json = {"targets": self.targets.to_json(), "measure": self.measure}
        if self.checks is not None:
            data["checks"] = self.checks.to_json()
        if self.pck is not None:
            data["pck"] = self.pck.to_json()
        return data

    def measures(self) -> RoundMeasures:
        """The figures the round policy reads (an undefined figure as NaN)."""
        return RoundMeasures(_number(self.measure), _number(self.pck.pck) if self.pck is not None else None,
                          _number(self.checks.detection_rate) if self.checks is not None else None)


@dataclass
class AnchorLabelsResult:
    """``iter0/anchor_labels``: the initial models' hands on the anchor recordings, and how many
    zoomed-in copies of them were written."""

    replay: ReplayRecord
    zoomed_copies: int

    @classmethod
    def from_json(cls, data: Json) -> AnchorLabelsResult:
        return cls(ReplayRecord.from_json(data), data.get("zoomed_copies", 0))

    def to_json(self) -> Json:
        return {**self.replay.to_json(), "zoomed_copies": self.zoomed_copies}


@dataclass
class PseudoLabelsResult:
    """``iter{k}/pseudo_labels``: the targets replayed at the round's candidate ``thresholds`` with
    the models of round ``models_from``."""

    models_from: int
    thresholds: Thresholds | None = None
    replay: ReplayRecord = field(default_factory=ReplayRecord)

    @classmethod
    def from_json(cls, data: Json) -> PseudoLabelsResult:
        thresholds = Thresholds(**data["thresholds"]) if "thresholds" in data else None
        return cls(int(data["models_from"]), thresholds, ReplayRecord.from_json(data))

    def to_json(self) -> Json:
        data: Json = {}
        if self.thresholds is not None:
            data["thresholds"] = asdict(self.thresholds)
        return {**data, "models_from": self.models_from, **self.replay.to_json()}


@dataclass
class TrainingSummary:
    """How a fine-tuning went: losses and held-out metrics before and after, and the split sizes."""

    initial_loss: Figure
    final_loss: Figure
    initial_metrics: dict[str, float]
    final_metrics: dict[str, float]
    val_images: int

    FIELDS = ("initial_loss", "final_loss", "initial_metrics", "final_metrics", "val_images")


@dataclass
class FineTuneResult:
    """``iter{k}/detector`` or ``iter{k}/estimator``: one network fine-tuned from round
    ``weights_from``'s weights (``training``), or ``skipped`` (no training image); which epoch of
    the pose estimator was kept by labelled PCK (``epoch_pck``, ``epoch_kept``); where its
    weights are (relative to the run folder) and their hash."""

    weights_from: int
    train_images: int = 0
    train_hands: int = 0
    training: TrainingSummary | None = None
    epoch_pck: list[float] | None = None  # labelled PCK after each epoch
    epoch_kept: int | None = None  # the epoch (1-based) whose weights were kept
    skipped: str | None = None
    weights: str | None = None
    sha256: str | None = None

    ALWAYS = ("weights_from", "train_images", "train_hands")
    OPTIONAL = ("epoch_pck", "epoch_kept", "skipped", "weights", "sha256")

    @classmethod
    def from_json(cls, data: Json) -> FineTuneResult:
        trained = "initial_loss" in data
        training = TrainingSummary(**_pick(data, TrainingSummary.FIELDS)) if trained else None
        return cls(**_pick(data, cls.ALWAYS + cls.OPTIONAL), training=training)

    def to_json(self) -> Json:
        data = {name: getattr(self, name) for name in self.ALWAYS}
        if self.training is not None:
            data.update({name: getattr(self.training, name) for name in TrainingSummary.FIELDS})
        data.update({name: getattr(self, name) for name in self.OPTIONAL if getattr(self, name) is not None})
        return data


StepResult = EvaluateResult | AnchorLabelsResult | PseudoLabelsResult | FineTuneResult


def evaluate_step(k: int) -> str:
    return f"iter{k}/evaluate"


def pseudo_labels_step(k: int) -> str:
    return f"iter{k}/pseudo_labels"


def fine_tune_step(k: int, network: Network) -> str:
    return f"iter{k}/{network}"


ANCHOR_LABELS_STEP = "iter0/anchor_labels"


def _result_from_json(name: str, data: Json) -> StepResult:
    kind = name.rsplit("/", 1)[-1]
    if kind == "evaluate":
        return EvaluateResult.from_json(data)
    if name == ANCHOR_LABELS_STEP:
        return AnchorLabelsResult.from_json(data)
    if kind == "pseudo_labels":
        return PseudoLabelsResult.from_json(data)
    if kind in ("detector", "estimator"):
        return FineTuneResult.from_json(data)
    raise ValueError(f"unknown step {name!r}")


@dataclass
class Step:
    """A finished step: its name (``iter{k}/...``) and result."""

    name: str
    result: StepResult


@dataclass
class RunState:
    """The whole state: finished steps in order and, once the run has ended, its outcome."""

    options: Json  # RefineSettings.identity() of the run
    steps: list[Step] = field(default_factory=list)
    format: int = STATE_FORMAT
    finished: bool = False
    stopped_because: str | None = None
    best_iteration: int | None = None
    best_models: dict[str, str] | None = None  # {"detector": path or "pretrained", "estimator": ...}

    def result(self, name: str) -> StepResult | None:
        """The result of step ``name``, None when it has not finished."""
        return next((step.result for step in self.steps if step.name == name), None)

    def has(self, name: str) -> bool:
        return any(step.name == name for step in self.steps)

    def record(self, name: str, result: StepResult) -> None:
        self.steps.append(Step(name, result))

    def evaluation(self, k: int) -> EvaluateResult | None:
        result = self.result(evaluate_step(k))
        return result if isinstance(result, EvaluateResult) else None

    def pseudo_labels(self, k: int) -> PseudoLabelsResult | None:
        result = self.result(pseudo_labels_step(k))
        return result if isinstance(result, PseudoLabelsResult) else None

    def fine_tune(self, k: int, network: Network) -> FineTuneResult | None:
        result = self.result(fine_tune_step(k, network))
        return result if isinstance(result, FineTuneResult) else None

    def anchor_labels(self) -> AnchorLabelsResult | None:
        result = self.result(ANCHOR_LABELS_STEP)
        return result if isinstance(result, AnchorLabelsResult) else None

    def evaluated_rounds(self) -> list[int]:
        """The rounds evaluated so far, 0, 1, ... up to the first one missing."""
        rounds: list[int] = []
        while self.evaluation(len(rounds)) is not None:
            rounds.append(len(rounds))
        return rounds

    def measures(self) -> dict[int, RoundMeasures]:
        """What the round policy reads of every evaluated round."""
        return {int(step.name[4:].split("/")[0]): step.result.measures() for step in self.steps
                if isinstance(step.result, EvaluateResult)}

    def to_json(self) -> Json:
        data: Json = {"format": self.format, "options": self.options,
                      "steps": [{"name": step.name, "result": step.result.to_json()} for step in self.steps]}
        if self.finished:
            data.update(finished=True, stopped_because=self.stopped_because,
                        best_iteration=self.best_iteration, best_models=self.best_models)
        return data

    @classmethod
    def from_json(cls, data: Json) -> RunState:
        steps = [Step(step["name"], _result_from_json(step["name"], step["result"]))
                 for step in data.get("steps", [])]
        return cls(options=data.get("options", {}), steps=steps, format=data.get("format", STATE_FORMAT),
                   finished=bool(data.get("finished", False)), stopped_because=data.get("stopped_because"),
                   best_iteration=data.get("best_iteration"), best_models=data.get("best_models"))


def read_state(path: Path, any_format: bool = False) -> RunState:
    """The state in ``path`` (a ``state.json``, or the run folder holding one).

    Raises :class:`RefinementStateError` on a file that is not JSON or not a run state, and on
    another format than :data:`STATE_FORMAT` unless ``any_format`` (to show an older run, not to
    resume it).
    """
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:  # cannot happen with atomic writes, unless edited by hand
        raise RefinementStateError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RefinementStateError(f"{path}: not a refinement state")
    if data.get("format") != STATE_FORMAT and not any_format:
        raise RefinementStateError(f"{path}: this run folder was made by an older version (state format "
                                   f"{data.get('format')}, now {STATE_FORMAT}); choose a new folder")
    try:
        return RunState.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RefinementStateError(f"{path}: not a refinement state of format {STATE_FORMAT}: "
                                   f"{type(exc).__name__}: {exc}") from exc


def write_state(path: Path, state: RunState) -> Path:
    """Write ``state`` to ``path`` (a ``state.json``) atomically."""
    return atomic_write_json(path, state.to_json())
