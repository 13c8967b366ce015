"""Iterative self-supervised refinement (arXiv 2307.03007), checkpointed step by step.

Before the rounds, ``iter0/anchor_labels`` (with anchor recordings): the initial models label the
anchor recordings once (see :mod:`.anchors`); every round trains on those too.

Round ``k`` (1..iterations):

1. ``iter{k}/pseudo_labels``: replay the target recordings with the models of the best round
   before ``k`` (see below) at the round's *candidate* thresholds (:data:`DEFAULT_SCHEDULE`):
   the filters keep only anatomically and temporally plausible hands, which become a COCO
   dataset.
2. ``iter{k}/detector`` and ``iter{k}/estimator``: fine-tune each network on those pseudo-labels
   and the anchor images (CPU-sized: few epochs, small batches, glove-like recolouring among the
   augmentations). With a frozen backbone the detector keeps the heads it started from next to
   the fine-tuned ones (``FineTuneConfig.keep_initial``): they add hands, the kept ones stay.
   The detector starts from the models the pseudo-labels came from; the pose estimator starts
   from the initial weights every round (``RefineOptions.pose_from_initial``): it learns the
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
own seed. Which round's models a round started from is recorded as ``models_from``. (Measured on
the gloved glovebox stills: round 3, built on round 2's 26 frames with a hand, fell to 15 and lost
a labelled hand; round 4, the same pseudo-labels from round 2's models with another seed, found
31.)

Bootstrapping (the initial model finds gloved hands in few frames): early rounds take every
candidate the detector scores above a low threshold and the landmark network calls present at
a low presence, but demand *more* anatomical plausibility than the live config (more valid
keypoints, tighter bone ratios and joint angles); later rounds move the candidate thresholds
towards the live ones as the models grow confident.

Every step's result is appended to ``state.json`` (written atomically) after its files are in
place, so a run killed at any point resumes from the last finished step: ``refine`` on an
existing run folder skips what is recorded and redoes the step that was interrupted (its
partial files are discarded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_refiner.atomic import atomic_write_json
from hand_pose_refiner.coco import CocoImage, load_coco
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.metrics import pck
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import (
    AugmentConfig,
    FineTuneConfig,
    FineTuneReport,
    HandDetector,
    PoseEstimator,
    SupportsConsistencyCheck,
    SupportsCropSearch,
    SupportsPresenceThreshold,
)
from hand_pose_refiner.models.distributed import current
from hand_pose_refiner.refinement.anchors import write_zoomed_copies
from hand_pose_refiner.refinement.inputs import InputSpec
from hand_pose_refiner.refinement.replay import ANNOTATIONS, ReplayOptions, ReplaySummary, replay

LOGGER = logging.getLogger("hand_pose_refiner.refine")
STATE = "state.json"
# 2: detector targets follow the pseudo-labels' palm convention, anchor recordings. 3: a round
# starts from the best round before it; the recurring-object filter leaves neighbouring stills
# out. 4: the pose estimator of every round is fine-tuned from the initial weights and keeps
# its last epoch that keeps labelled PCK. An older run's finished steps were made otherwise, so
# it is not resumed.
STATE_FORMAT = 4
ANCHOR_FOLDER = "anchor"
ZOOMED_FOLDER = "anchor_zoomed"


@dataclass(frozen=True)
class Thresholds:
    """One round's candidate thresholds and filter strictness for the pseudo-labels."""

    detection_score_threshold: float
    min_presence: float
    min_hand_score: float
    min_keypoint_score: float
    min_keypoints: int
    bone_ratio_tolerance: float
    max_backward_bend_deg: float

    def apply(self, config: Config) -> Config:
        """The config with these thresholds (everything else as the live config)."""
        return replace(
            config,
            models=replace(config.models, detection_score_threshold=self.detection_score_threshold),
            spatial_filter=replace(config.spatial_filter, min_hand_score=self.min_hand_score,
                                   min_keypoint_score=self.min_keypoint_score,
                                   min_keypoints=self.min_keypoints,
                                   bone_ratio_tolerance=self.bone_ratio_tolerance,
                                   max_backward_bend_deg=self.max_backward_bend_deg))


# Low candidate thresholds early, strict anatomy throughout (live config: min_keypoints 12,
# bone_ratio_tolerance 1.6, max_backward_bend_deg 50, detection threshold 0.5, presence 0.5).
DEFAULT_SCHEDULE: tuple[Thresholds, ...] = (
    Thresholds(0.10, 0.20, 0.02, 0.15, 18, 1.3, 35.0),
    Thresholds(0.20, 0.30, 0.05, 0.25, 17, 1.4, 40.0),
    Thresholds(0.30, 0.40, 0.10, 0.30, 16, 1.5, 45.0),
)


@dataclass(frozen=True)
class LabelledSet:
    """A COCO file with labelled hands, for PCK (``tip_first`` for RHD's finger order)."""

    path: Path
    tip_first: bool = False


@dataclass(frozen=True)
class RefineOptions:
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
    # all by default (one keypoint of the 126 labelled ones is 0.008).
    max_pck_drop: float = 0.0
    max_check_drop: float = 0.05
    pck_alpha: float = 0.2
    seed: int = 0
    freeze_backbone: bool = True
    # Rounds whose pseudo-labels also come from a crop search over every target frame (MediaPipe
    # backend): crop sides as fractions of the image height, each at four angles. See README.
    search_rounds: int = 0
    search_sizes: tuple[float, ...] = (0.22, 0.35, 0.55)
    # Pseudo-labels only from hands whose keypoints hold under turned, scaled and shifted crops
    # (MediaPipe backend; see models/mediapipe/estimator.py).
    consistency_check: bool = True
    # Fine-tune the pose estimator from the initial weights every round, not from the previous
    # round's: chained, each round's drift is the next one's start (a labelled wrist moved from
    # 0.14 to 0.17 to 0.24 of its hand's box in two rounds, out of PCK@0.2); README, Refinement.
    pose_from_initial: bool = True
    # Keep the pose estimator's last epoch whose labelled PCK is not below the initial models'
    # (with labelled sets): the glove it learns early, the bare-hand wrist it loses late.
    keep_pck_epoch: bool = True

    def thresholds(self, iteration: int) -> Thresholds:
        """The schedule entry of round ``iteration`` (1-based; the last one repeats)."""
        return self.schedule[min(iteration, len(self.schedule)) - 1]

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the original (the iteration count may grow)."""
        data = json.loads(json.dumps(asdict(self), default=str))
        data.pop("iterations")
        return data


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _finetune_summary(report: FineTuneReport) -> dict[str, Any]:
    return {"initial_loss": report.initial_loss, "final_loss": report.final_loss,
            "initial_metrics": report.initial_metrics,
            "final_metrics": report.epochs[-1].metrics if report.epochs else {},
            "train_images": report.train_images, "val_images": report.val_images}


def _replay_summary(summary: ReplaySummary) -> dict[str, Any]:
    data = summary.as_dict()
    data["inputs"] = [{k: i[k] for k in ("path", "frames", "raw_hands", "accepted_hands", "frames_with_hands",
                                         "detection_rate", "mean_keypoint_confidence", "error")}
                      for i in data["inputs"]]
    return data


class Refinement:
    """One run folder: runs the missing steps, in order, recording each one in ``state.json``."""

    def __init__(self, run_dir: Path, options: RefineOptions, config: Config,
                 replay_options: ReplayOptions | None = None,
                 on_step: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.options = options
        self.config = config
        self.replay_options = replace(replay_options or ReplayOptions(), cache_dir=self.run_dir / "cache",
                                      overwrite=True, write_bag=False)
        self.on_step = on_step
        # Under torchrun: rank 0 replays, evaluates and keeps the state; every rank fine-tunes.
        self.parallel = current()
        self.main = self.parallel is None or self.parallel.is_main
        state = self._load_state() if self.main else None
        self.state = self.parallel.broadcast(state) if self.parallel is not None else state

    # -- state --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        path = self.run_dir / STATE
        identity = self.options.identity()
        if not path.is_file():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            state = {"format": STATE_FORMAT, "options": identity, "steps": []}
            atomic_write_json(path, state)
            return state
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as exc:  # cannot happen with atomic writes, unless edited by hand
            raise RefinementStateError(f"{path}: not valid JSON: {exc}") from exc
        if state.get("format") != STATE_FORMAT:
            raise RefinementStateError(f"{path}: this run folder was made by an older version (state format "
                                       f"{state.get('format')}, now {STATE_FORMAT}); choose a new folder")
        if state.get("options") != identity:
            raise RefinementStateError(f"{path}: this run folder was made with other options; resume it "
                                       f"with the same inputs and settings or choose a new folder")
        return state

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        return {step["name"]: step["result"] for step in self.state["steps"]}

    def _step(self, name: str, work: Callable[[], dict[str, Any]],
              collective: bool = False) -> dict[str, Any]:
        """Run ``work`` unless the state records it finished; then record it (atomically).

        Data-parallel (torchrun): a ``collective`` step (fine-tuning) runs on every rank, any
        other on rank 0 alone; rank 0 records it and every rank receives the new state, so all
        ranks take the same decisions.
        """
        done = self.results
        if name in done:
            return done[name]
        if self.main:
            LOGGER.info("refine step %s", name)
        result = work() if collective or self.main else {}
        if self.main:
            self.state["steps"].append({"name": name, "result": result})
            atomic_write_json(self.run_dir / STATE, self.state)
            if self.on_step is not None:
                self.on_step(name, result)
        if self.parallel is not None:
            self.state = self.parallel.broadcast(self.state)
        return self.results[name]

    # -- models -------------------------------------------------------------------------------

    def model_paths(self, iteration: int) -> tuple[Path | None, Path | None]:
        if iteration == 0:
            base = self.config.models
            return (Path(base.detector_checkpoint) if base.detector_checkpoint else None,
                    Path(base.pose_checkpoint) if base.pose_checkpoint else None)
        return round_weights(self.run_dir, iteration)

    def models(self, iteration: int, thresholds: Thresholds | None = None,
               detector_iteration: int | None = None) -> tuple[HandDetector, PoseEstimator]:
        detector_path = self.model_paths(iteration if detector_iteration is None else detector_iteration)[0]
        estimator_path = self.model_paths(iteration)[1]
        models_config = replace(self.config.models, detector_checkpoint=str(detector_path or ""),
                                pose_checkpoint=str(estimator_path or ""))
        if thresholds is not None:
            models_config = replace(models_config,
                                    detection_score_threshold=thresholds.detection_score_threshold)
        detector, estimator = create_backend(models_config)
        if thresholds is not None and isinstance(estimator, SupportsPresenceThreshold):
            estimator.min_presence = thresholds.min_presence
        return detector, estimator

    # -- steps --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) the loop; returns the final state (also in ``state.json``)."""
        labelled = self._labelled()
        self._step("iter0/evaluate", lambda: self._evaluate(0, labelled))
        if self.options.anchors:
            self._step("iter0/anchor_labels", self._anchor_labels)
        for k in range(1, self.options.iterations + 1):
            if self.stop_reason(k - 1) is not None:
                break
            self._step(f"iter{k}/pseudo_labels", lambda k=k: self._pseudo_labels(k))
            self._step(f"iter{k}/detector", lambda k=k: self._fine_tune(k, "detector", labelled), True)
            self._step(f"iter{k}/estimator", lambda k=k: self._fine_tune(k, "estimator", labelled), True)
            self._step(f"iter{k}/evaluate", lambda k=k: self._evaluate(k, labelled))
        last = max(k for k in range(self.options.iterations + 1) if f"iter{k}/evaluate" in self.results)
        self.state["finished"] = True
        self.state["stopped_because"] = self.stop_reason(last) or "all iterations done"
        self.state["best_iteration"] = self.best_iteration()
        detector, estimator = self.model_paths(self.state["best_iteration"])
        self.state["best_models"] = {"detector": str(detector or "pretrained"),
                                     "estimator": str(estimator or "pretrained")}
        if self.main:
            atomic_write_json(self.run_dir / STATE, self.state)
        return self.state

    def _labelled(self) -> list[CocoImage]:
        images: list[CocoImage] = []
        for item in self.options.labelled:
            images.extend(load_coco(item.path, tip_first=item.tip_first))
        return images

    def _pseudo_labels(self, k: int) -> dict[str, Any]:
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
        return {"thresholds": asdict(thresholds), "models_from": base, **_replay_summary(summary)}

    def _anchor_labels(self) -> dict[str, Any]:
        """The initial models' accepted hands on the anchor recordings, at the live thresholds,
        and zoomed-in copies of them (see refinement/anchors.py)."""
        detector, estimator = self.models(0)
        summary = replay(self.options.anchors, self.run_dir / ANCHOR_FOLDER, self.config, detector, estimator,
                         self.replay_options)
        labelled = self._capped(self.run_dir / ANCHOR_FOLDER / ANNOTATIONS)
        zoomed = write_zoomed_copies(labelled, self.run_dir / ZOOMED_FOLDER, self.options.seed)
        return {**_replay_summary(summary), "zoomed_copies": len(load_coco(zoomed))}

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

    def weights_from(self, k: int, which: str) -> int:
        """The round whose weights round ``k``'s ``which`` ("detector" or "estimator") starts from:
        the round its pseudo-labels came from (as recorded), or 0 for the pose estimator with
        ``pose_from_initial``."""
        if which == "estimator" and self.options.pose_from_initial:
            return 0
        return int(self.results[f"iter{k}/pseudo_labels"]["models_from"])

    def _fine_tune(self, k: int, which: str, labelled: list[CocoImage]) -> dict[str, Any]:
        start = self.weights_from(k, which)
        detector, estimator = self.models(start)
        model = detector if which == "detector" else estimator
        target = self.model_paths(k)[0 if which == "detector" else 1]
        assert target is not None
        train = self.training_set(k)
        result: dict[str, Any] = {"weights_from": start, "train_images": len(train),
                                  "train_hands": int(sum(len(item.hands) for item in train))}
        if train:
            options = self.options
            epochs, learning_rate = ((options.detector_epochs, options.detector_learning_rate)
                                     if which == "detector" else (options.epochs, options.learning_rate))
            config = FineTuneConfig(
                epochs=epochs, learning_rate=learning_rate,
                batch_size=self.options.batch_size, freeze_backbone=self.options.freeze_backbone,
                seed=self.options.seed + k, samples_per_image=self.options.samples_per_image,
                augment=AugmentConfig(glove_probability=self.options.glove_probability),
                pck_alpha=self.options.pck_alpha, pseudo_labels=True,
                keep_initial=self.options.freeze_backbone)
            select = which == "estimator" and self.options.keep_pck_epoch and bool(labelled)
            if select:
                config = replace(config, checkpoint_dir=self.run_dir / f"iter{k}" / "estimator_epochs")
            report = model.fine_tune(train, config, val_dataset=labelled)
            result.update(_finetune_summary(report))
            if select and self.main:
                result.update(self._keep_pck_epoch(k, start, model, report, labelled))
        else:
            result["skipped"] = "no pseudo-labelled hands: the weights it started from are kept"
        if not self.main:
            return result  # rank 0 writes the weights (the single-process format, atomically)
        model.save(target)
        result["weights"] = str(target.relative_to(self.run_dir))
        result["sha256"] = _file_hash(target)
        return result

    def _keep_pck_epoch(self, k: int, start: int, estimator: PoseEstimator, report: FineTuneReport,
                        labelled: list[CocoImage]) -> dict[str, Any]:
        """Load into ``estimator`` the last epoch whose labelled PCK, with round ``k``'s detector (as
        the evaluation will score it), is not below :meth:`pck_floor`; the last epoch when none is."""
        checkpoints = [epoch.checkpoint for epoch in report.epochs if epoch.checkpoint is not None]
        if not checkpoints or len(checkpoints) < len(report.epochs):
            return {}  # a backend that does not write per-epoch checkpoints keeps its last epoch
        detector, _ = self.models(start, detector_iteration=k)
        scores = []
        for checkpoint in checkpoints:
            estimator.load(checkpoint)
            scores.append(labelled_pck(detector, estimator, labelled, self.options.pck_alpha)["pck"])
        kept = last_epoch_keeping(scores, self.pck_floor())
        estimator.load(checkpoints[kept - 1])
        return {"epoch_pck": scores, "epoch_kept": kept}

    def _evaluate(self, k: int, labelled: list[CocoImage]) -> dict[str, Any]:
        detector, estimator = self.models(k)
        folder = self.run_dir / f"iter{k}"
        targets = replay(self.options.targets, folder / "eval", self.config, detector, estimator,
                         self.replay_options)
        result: dict[str, Any] = {"targets": _replay_summary(targets), "measure": targets.detection_rate}
        if self.options.checks:
            checks = replay(self.options.checks, folder / "eval_checks", self.config, detector, estimator,
                            self.replay_options)
            result["checks"] = _replay_summary(checks)
        if labelled:
            result["pck"] = labelled_pck(detector, estimator, labelled, self.options.pck_alpha)
        return result

    # -- decisions ----------------------------------------------------------------------------

    def pck_floor(self) -> float:
        """The lowest labelled PCK a round may have: the initial models' less ``max_pck_drop``."""
        return float(self.results["iter0/evaluate"]["pck"]["pck"]) - self.options.max_pck_drop

    def regression(self, k: int) -> str | None:
        """Why round ``k`` fails the no-regression checks (labelled PCK, check recordings), if it does."""
        results, initial = self.results[f"iter{k}/evaluate"], self.results["iter0/evaluate"]
        if "pck" in initial:
            before, after = initial["pck"]["pck"], results["pck"]["pck"]
            if after < self.pck_floor():
                return f"PCK on the labelled images fell from {before:.3f} to {after:.3f}"
        if "checks" in initial:
            before, after = initial["checks"]["detection_rate"], results["checks"]["detection_rate"]
            if after < before - self.options.max_check_drop:
                return f"detection rate on the check recordings fell from {before:.3f} to {after:.3f}"
        return None

    def acceptable(self, k: int) -> bool:
        """Whether round ``k`` keeps the no-regression checks."""
        return self.regression(k) is None

    def _acceptable_rounds(self, before: int) -> list[int]:
        return [k for k in range(before) if f"iter{k}/evaluate" in self.results and self.acceptable(k)]

    def best_iteration(self) -> int:
        """The result: the round with the highest measure that keeps the checks (the earliest of
        equals)."""
        rounds = self._acceptable_rounds(self.options.iterations + 1)
        return max(rounds, key=lambda k: (self.results[f"iter{k}/evaluate"]["measure"], -k))

    def base_iteration(self, k: int) -> int:
        """The round whose models round ``k`` starts from: the best acceptable round before it,
        the later of equals (it has learnt more of the target)."""
        rounds = self._acceptable_rounds(k)
        return max(rounds, key=lambda j: (self.results[f"iter{j}/evaluate"]["measure"], j))

    def stop_reason(self, k: int) -> str | None:
        """Why no round after ``k`` should run (None: go on)."""
        if k == 0:
            return None
        best_before = max(self.results[f"iter{j}/evaluate"]["measure"] for j in range(k)
                          if self.acceptable(j))
        stale = 0
        for j in range(1, k + 1):
            measure = self.results[f"iter{j}/evaluate"]["measure"]
            improved = self.acceptable(j) and measure >= max(
                self.results[f"iter{i}/evaluate"]["measure"] for i in range(j) if self.acceptable(i)
            ) + self.options.min_improvement
            stale = 0 if improved else stale + 1
        if stale >= self.options.patience:
            rejected = [f"round {j}: {self.regression(j)}" for j in range(k - stale + 1, k + 1)
                        if self.regression(j)]
            return (f"no improvement of the detection rate for {stale} round(s) "
                    f"(best before round {k}: {best_before:.3f})"
                    + (f"; rejected by the no-regression checks: {'; '.join(rejected)}" if rejected else ""))
        return None


def round_weights(run_dir: Path, iteration: int) -> tuple[Path, Path]:
    """Where round ``iteration`` (1 or later) of a run keeps its detector and pose estimator."""
    folder = Path(run_dir) / f"iter{iteration}"
    return folder / "detector.safetensors", folder / "estimator.safetensors"


def last_epoch_keeping(scores: Sequence[float], floor: float) -> int:
    """The last epoch (1-based) whose score is at least ``floor``; the last epoch if none is."""
    passing = [epoch for epoch, score in enumerate(scores, start=1) if score >= floor]
    return passing[-1] if passing else len(scores)


def _spread(items: Sequence[CocoImage], count: int) -> list[CocoImage]:
    """At most ``count`` of ``items``, evenly spread over them."""
    picks = np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))
    return [items[i] for i in picks] if count > 0 and items else []


def labelled_pck(detector: HandDetector, estimator: PoseEstimator, images: Sequence[CocoImage],
                 alpha: float = 0.2) -> dict[str, Any]:
    """PCK@alpha of the whole pipeline on labelled images (as bench/pck_labelled_hands.py).

    Each labelled hand is scored against the predicted hand closest to it; a hand not found
    scores 0, so a detector that loses hands is penalised.
    """
    from hand_pose_refiner.models.mediapipe.training import read_rgb

    predicted, target, boxes, found = [], [], [], 0
    for item in images:
        image = read_rgb(item.path)
        hands = estimator.estimate([image], detector.detect([image]))[0]
        for k in range(len(item.hands)):
            truth = item.hands.keypoints[k]
            guess = np.full_like(truth, np.nan)
            if len(hands):
                error = np.nanmean(np.linalg.norm(hands.keypoints - truth, axis=-1), axis=-1)
                guess = hands.keypoints[int(np.argmin(error))]
                found += 1
            predicted.append(guess)
            target.append(truth)
            boxes.append(item.hands.boxes[k])
    if not target:
        return {"pck": math.nan, "hands": 0, "found": 0}
    return {"pck": pck(np.stack(predicted), np.stack(target), np.stack(boxes), alpha), "hands": len(target),
            "found": found, "alpha": alpha}

