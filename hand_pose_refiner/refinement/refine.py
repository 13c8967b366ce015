"""Iterative self-supervised refinement (arXiv 2307.03007), checkpointed step by step.

Before the rounds, ``iter0/anchor_labels`` (with anchor recordings): the initial models label the
anchor recordings once (see :mod:`.anchors`); every round trains on those too.

Round ``k`` (1..iterations):

1. ``iter{k}/pseudo_labels``: replay the target recordings with the models of the best round
   before ``k`` (see below) at the round's *candidate* thresholds (:data:`.rounds.DEFAULT_SCHEDULE`):
   the filters keep only anatomically and temporally plausible hands, which become a COCO
   dataset.
2. ``iter{k}/detector`` and ``iter{k}/estimator``: fine-tune each network on those pseudo-labels
   and the anchor images (CPU-sized: few epochs, small batches, glove-like recolouring among the
   augmentations). With a frozen backbone the detector keeps the heads it started from next to
   the fine-tuned ones (``FineTuneSettings.keep_initial``): they add hands, the kept ones stay.
   The detector starts from the models the pseudo-labels came from; the pose estimator starts
   from the initial weights every round (``RefineSettings.pose_from_initial``): it learns the
   round's better pseudo-labels without carrying the drift of every earlier fine-tuning.
3. ``iter{k}/evaluate``: replay targets and check recordings with the new models at the
   *reference* thresholds of the configuration (what the live nodes run), and score PCK on the
   optional labelled sets. Round 0 evaluates the initial models the same way.

The measure is the detection rate (frames with an accepted hand) on the targets at the
reference thresholds. A round whose PCK on the labelled sets falls below the initial models'
(by more than ``max_pck_drop``, 0 by default), or whose detection rate on the check recordings
falls more than ``max_check_drop``, does not count as an improvement. The loop stops early
after ``patience`` rounds without improvement; the best round's models are the result.

A round starts from the models of the best round before it (on a tie, the later one), not
blindly from the previous round: a round that fell back or failed the no-regression checks is
not built on, and with ``patience`` above 1 the next round retries from the best models with its
own seed. Which round's models a round started from is recorded as ``models_from``
(docs/design/refinement_loop.md says why).

Bootstrapping (the initial model finds gloved hands in few frames): early rounds take every
candidate the detector scores above a low threshold and the landmark network calls present at
a low presence, but demand *more* anatomical plausibility than the live config (more valid
keypoints, tighter bone ratios and joint angles); later rounds move the candidate thresholds
towards the live ones as the models grow confident.

Every step's result is appended to ``state.json`` (written atomically, see :mod:`.run_state`)
after its files are in place, so a run killed at any point resumes from the last finished step:
``refine`` on an existing run folder skips what is recorded and redoes the step that was
interrupted (its partial files are discarded).

This module is the step loop; the options are in :mod:`.options`, the schedule and the decisions
in :mod:`.rounds`, the scoring in :mod:`.evaluation`, the rounds' weights in :mod:`.round_models`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property, partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from hand_pose_refiner.coco import CocoImage, load_coco
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.models.base import (
    AugmentSettings,
    FineTuneReport,
    FineTuneSettings,
    HandDetector,
    PoseEstimator,
    SupportsConsistencyCheck,
    SupportsCropSearch,
)
from hand_pose_refiner.models.distributed import current
from hand_pose_refiner.refinement.anchors import write_zoomed_copies
from hand_pose_refiner.refinement.evaluation import evaluate_models, labelled_pck, replay_record
from hand_pose_refiner.refinement.replay import ANNOTATIONS, ReplaySettings, replay
from hand_pose_refiner.refinement.round_models import RoundModels, round_weights
from hand_pose_refiner.refinement.rounds import DEFAULT_SCHEDULE, RoundPolicy, Thresholds, last_epoch_keeping
from hand_pose_refiner.refinement.run_state import (
    ANCHOR_LABELS_STEP,
    NETWORKS,
    STATE_FILE,
    STATE_FORMAT,
    AnchorLabelsResult,
    EvaluateResult,
    FineTuneResult,
    Network,
    PseudoLabelsResult,
    RunState,
    StepResult,
    TrainingSummary,
    evaluate_step,
    fine_tune_step,
    pseudo_labels_step,
    read_state,
    write_state,
)
from hand_pose_refiner.refinement.settings import LabelledSet, RefineSettings, same_run

LOGGER = logging.getLogger("hand_pose_refiner.refine")
STATE = STATE_FILE
ANCHOR_FOLDER = "anchor"
ZOOMED_FOLDER = "anchor_zoomed"
Result = TypeVar("Result", bound=StepResult)

__all__ = ["ANCHOR_FOLDER", "DEFAULT_SCHEDULE", "STATE", "STATE_FORMAT", "ZOOMED_FOLDER", "LabelledSet",
           "RefineSettings", "Refinement", "Thresholds", "labelled_pck", "last_epoch_keeping",
           "round_weights"]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class Refinement:
    """One run folder: runs the missing steps, in order, recording each one in ``state.json``."""

    def __init__(self, run_dir: Path, options: RefineSettings, config: Config,
                 replay_options: ReplaySettings | None = None,
                 on_step: Callable[[str, StepResult], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.options = options
        self.config = config
        self.replay_options = replace(replay_options or ReplaySettings(), cache_dir=self.run_dir / "cache",
                                      overwrite=True, write_bag=False)
        self.on_step = on_step
        self.round_models = RoundModels(self.run_dir, config)
        # Under torchrun: rank 0 replays, evaluates and keeps the state; every rank fine-tunes.
        self.parallel = current()
        self.main = self.parallel is None or self.parallel.is_main
        state = self._load_state() if self.main else None
        if self.parallel is not None:
            state = self.parallel.broadcast(state)
        assert state is not None
        self.state: RunState = state

    # -- state --------------------------------------------------------------------------------

    def _load_state(self) -> RunState:
        path = self.run_dir / STATE
        identity = self.options.identity()
        if not path.is_file():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            state = RunState(options=identity)
            write_state(path, state)
            return state
        state = read_state(path)
        if not same_run(state.options, identity):
            raise RefinementStateError(f"{path}: this run folder was made with other options; resume it "
                                       f"with the same inputs and settings or choose a new folder")
        return state

    def _step(self, name: str, kind: type[Result], work: Callable[[], Result],
              collective: bool = False) -> Result:
        """Run ``work`` unless the state records it finished; then record it (atomically).

        Data-parallel (torchrun): a ``collective`` step (fine-tuning) runs on every rank, any
        other on rank 0 alone; rank 0 records it and every rank receives the new state, so all
        ranks take the same decisions.
        """
        if not self.state.has(name):
            if self.main:
                LOGGER.info("refine step %s", name)
            result = work() if collective or self.main else None
            if self.main:
                assert result is not None
                self.state.record(name, result)
                write_state(self.run_dir / STATE, self.state)
                if self.on_step is not None:
                    self.on_step(name, result)
            if self.parallel is not None:
                self.state = self.parallel.broadcast(self.state)
        recorded = self.state.result(name)
        if not isinstance(recorded, kind):
            raise RefinementStateError(f"{self.run_dir / STATE}: step {name} holds no {kind.__name__}")
        return recorded

    # -- models -------------------------------------------------------------------------------

    def model_paths(self, iteration: int) -> tuple[Path | None, Path | None]:
        """Round ``iteration``'s (detector, pose estimator) weights; None: the backend's default."""
        return self.round_models.paths(iteration)

    def models(self, iteration: int, thresholds: Thresholds | None = None,
               detector_iteration: int | None = None) -> tuple[HandDetector, PoseEstimator]:
        """Round ``iteration``'s models (see :meth:`.RoundModels.build`)."""
        return self.round_models.build(iteration, thresholds, detector_iteration)

    # -- steps --------------------------------------------------------------------------------

    def run(self) -> RunState:
        """Run (or resume) the loop; returns the final state (also in ``state.json``)."""
        self._step(evaluate_step(0), EvaluateResult, partial(self._evaluate, 0))
        if self.options.anchors:
            self._step(ANCHOR_LABELS_STEP, AnchorLabelsResult, self._anchor_labels)
        for k in range(1, self.options.iterations + 1):
            if self.stop_reason(k - 1) is not None:
                break
            self._step(pseudo_labels_step(k), PseudoLabelsResult, partial(self._pseudo_labels, k))
            for network in NETWORKS:
                self._step(fine_tune_step(k, network), FineTuneResult, partial(self._fine_tune, k, network),
                           collective=True)
            self._step(evaluate_step(k), EvaluateResult, partial(self._evaluate, k))
        last = max(k for k in range(self.options.iterations + 1) if self.state.evaluation(k) is not None)
        best = self.best_iteration()
        detector, estimator = self.model_paths(best)
        self.state.finished = True
        self.state.stopped_because = self.stop_reason(last) or "all iterations done"
        self.state.best_iteration = best
        self.state.best_models = {"detector": str(detector or "pretrained"),
                                  "estimator": str(estimator or "pretrained")}
        if self.main:
            write_state(self.run_dir / STATE, self.state)
        return self.state

    @cached_property
    def labelled(self) -> list[CocoImage]:
        """The labelled sets' images (read when a step first needs them)."""
        images: list[CocoImage] = []
        for item in self.options.labelled:
            images.extend(load_coco(item.path, tip_first=item.tip_first))
        return images

    def _pseudo_labels(self, k: int) -> PseudoLabelsResult:
        thresholds = self.options.thresholds(k)
        base = self.base_iteration(k)
        detector, estimator = self.models(base, thresholds)
        if k <= self.options.search_rounds:
            if not isinstance(estimator, SupportsCropSearch):
                raise RefinementStateError(f"search_rounds: the {estimator.name} pose estimator has no "
                                           "crop search (the mediapipe backend has)")
            estimator.search_sizes = self.options.search_sizes
        if self.options.consistency_check and isinstance(estimator, SupportsConsistencyCheck):
            estimator.consistency_check = True
        summary = replay(self.options.targets, self.run_dir / f"iter{k}" / "pseudo",
                         thresholds.apply(self.config), detector, estimator, self.replay_options)
        return PseudoLabelsResult(models_from=base, thresholds=thresholds, replay=replay_record(summary))

    def _anchor_labels(self) -> AnchorLabelsResult:
        """The initial models' accepted hands on the anchor recordings, at the live thresholds,
        and zoomed-in copies of them (see refinement/anchors.py)."""
        detector, estimator = self.models(0)
        summary = replay(self.options.anchors, self.run_dir / ANCHOR_FOLDER, self.config, detector, estimator,
                         self.replay_options)
        labelled = self._capped(self.run_dir / ANCHOR_FOLDER / ANNOTATIONS)
        zoomed = write_zoomed_copies(labelled, self.run_dir / ZOOMED_FOLDER, self.options.seed)
        return AnchorLabelsResult(replay_record(summary), len(load_coco(zoomed)))

    def training_set(self, k: int) -> list[CocoImage]:
        """Round ``k``'s pseudo-labelled images with at least one hand (at most N per input), and
        ``anchor_ratio`` times as many anchor images, half of them zoomed-in copies (evenly spread)."""
        training = self._capped(self.run_dir / f"iter{k}" / "pseudo" / ANNOTATIONS)
        if self.options.anchors:
            share = round(self.options.anchor_ratio * len(training) / 2)
            training += _spread(self._capped(self.run_dir / ANCHOR_FOLDER / ANNOTATIONS), share)
            training += _spread(load_coco(self.run_dir / ZOOMED_FOLDER / ANNOTATIONS), share)
        return training

    def _capped(self, annotations: Path) -> list[CocoImage]:
        images = [item for item in load_coco(annotations) if len(item.hands)]
        by_input: dict[str, list[CocoImage]] = {}
        for item in images:
            by_input.setdefault(item.path.name.rsplit("_", 1)[0], []).append(item)
        chosen = []
        for items in by_input.values():
            chosen.extend(_spread(items, self.options.max_train_images_per_input))
        return chosen

    def weights_from(self, k: int, which: Network) -> int:
        """The round whose weights round ``k``'s ``which`` ("detector" or "estimator") starts from:
        the round its pseudo-labels came from (as recorded), or 0 for the pose estimator with
        ``pose_from_initial``."""
        if which == "estimator" and self.options.pose_from_initial:
            return 0
        pseudo = self.state.pseudo_labels(k)
        if pseudo is None:
            raise RefinementStateError(f"{self.run_dir / STATE}: round {k} has no pseudo-labels")
        return pseudo.models_from

    def _fine_tune(self, k: int, which: Network) -> FineTuneResult:
        start = self.weights_from(k, which)
        detector, estimator = self.models(start)
        target = self.model_paths(k)[0 if which == "detector" else 1]
        assert target is not None
        train = self.training_set(k)
        result = FineTuneResult(weights_from=start, train_images=len(train),
                                train_hands=int(sum(len(item.hands) for item in train)))
        model: HandDetector | PoseEstimator = detector if which == "detector" else estimator
        if train:
            options = self.options
            epochs, learning_rate = ((options.detector_epochs, options.detector_learning_rate)
                                     if which == "detector" else (options.epochs, options.learning_rate))
            config = FineTuneSettings(
                epochs=epochs, learning_rate=learning_rate,
                batch_size=options.batch_size, freeze_backbone=options.freeze_backbone,
                seed=options.seed + k, samples_per_image=options.samples_per_image,
                augment=AugmentSettings(glove_probability=options.glove_probability),
                pck_alpha=options.pck_alpha, pseudo_labels=True,
                keep_initial=options.freeze_backbone)
            labelled = self.labelled
            select = which == "estimator" and options.keep_pck_epoch and bool(labelled)
            if select:
                config = replace(config, checkpoint_dir=self.run_dir / f"iter{k}" / "estimator_epochs")
            report = model.fine_tune(train, config, val_dataset=labelled)
            result.train_images = report.train_images
            result.training = _training_summary(report)
            if select and self.main:
                self._keep_pck_epoch(k, start, estimator, report, result)
        else:
            result.skipped = "no pseudo-labelled hands: the weights it started from are kept"
        if not self.main:
            return result  # rank 0 writes the weights (the single-process format, atomically)
        model.save(target)
        result.weights = str(target.relative_to(self.run_dir))
        result.sha256 = _file_hash(target)
        return result

    def _keep_pck_epoch(self, k: int, start: int, estimator: PoseEstimator, report: FineTuneReport,
                        result: FineTuneResult) -> None:
        """Load into ``estimator`` the last epoch whose labelled PCK, with round ``k``'s detector (as
        the evaluation will score it), is not below :meth:`pck_floor`; the last epoch when none is.
        Records the epochs' PCK and the kept epoch in ``result``."""
        checkpoints = [epoch.checkpoint for epoch in report.epochs if epoch.checkpoint is not None]
        if not checkpoints or len(checkpoints) < len(report.epochs):
            return  # a backend that does not write per-epoch checkpoints keeps its last epoch
        detector, _ = self.models(start, detector_iteration=k)
        scores = []
        for checkpoint in checkpoints:
            estimator.load(checkpoint)
            pck = labelled_pck(detector, estimator, self.labelled, self.options.pck_alpha).pck
            scores.append(float("nan") if pck is None else pck)
        kept = last_epoch_keeping(scores, self.pck_floor())
        estimator.load(checkpoints[kept - 1])
        result.epoch_pck, result.epoch_kept = scores, kept

    def _evaluate(self, k: int) -> EvaluateResult:
        detector, estimator = self.models(k)
        options = self.options
        return evaluate_models(detector, estimator, self.run_dir / f"iter{k}", self.config, options.targets,
                               options.checks, self.labelled, self.replay_options, options.pck_alpha)

    # -- decisions (see rounds.RoundPolicy) -----------------------------------------------------

    @property
    def policy(self) -> RoundPolicy:
        """The round policy over the rounds evaluated so far."""
        options = self.options
        return RoundPolicy(self.state.measures(), options.max_pck_drop, options.max_check_drop,
                           options.min_improvement, options.patience)

    def pck_floor(self) -> float:
        """The lowest labelled PCK a round may have: the initial models' less ``max_pck_drop``."""
        return self.policy.pck_floor()

    def regression(self, k: int) -> str | None:
        """Why round ``k`` fails the no-regression checks (labelled PCK, check recordings), if it does."""
        return self.policy.regression(k)

    def acceptable(self, k: int) -> bool:
        """Whether round ``k`` keeps the no-regression checks."""
        return self.policy.acceptable(k)

    def best_iteration(self) -> int:
        """The result: the round with the highest measure that keeps the checks (the earliest of
        equals)."""
        return self.policy.best_iteration(self.options.iterations)

    def base_iteration(self, k: int) -> int:
        """The round whose models round ``k`` starts from: the best acceptable round before it,
        the later of equals."""
        return self.policy.base_iteration(k)

    def stop_reason(self, k: int) -> str | None:
        """Why no round after ``k`` should run (None: go on)."""
        return self.policy.stop_reason(k)


def _training_summary(report: FineTuneReport) -> TrainingSummary:
    return TrainingSummary(report.initial_loss, report.final_loss, report.initial_metrics,
                           report.epochs[-1].metrics if report.epochs else {}, report.val_images)


def _spread(items: Sequence[CocoImage], count: int) -> list[CocoImage]:
    """At most ``count`` of ``items``, evenly spread over them."""
    picks = np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))
    return [items[i] for i in picks] if count > 0 and items else []
