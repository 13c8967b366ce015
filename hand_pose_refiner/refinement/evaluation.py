"""How a refinement round's models are scored: replays of the targets and check recordings at the
live thresholds, and PCK of the whole pipeline on labelled images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.config import Config
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import pck
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay import ReplaySettings, ReplaySummary, replay
from hand_pose_refiner.refinement.run_state import EvaluateResult, LabelledPck, ReplayRecord


def replay_record(summary: ReplaySummary) -> ReplayRecord:
    """What the run state keeps of a replay (per input: counts, rates and error only)."""
    return ReplayRecord.from_json(summary.as_dict())


def labelled_pck(detector: HandDetector, estimator: PoseEstimator, images: Sequence[CocoImage],
                 alpha: float = 0.2) -> LabelledPck:
    """PCK@alpha of the whole pipeline on labelled images (as bench/pck_labelled_hands.py).

    Each labelled hand is scored against the predicted hand closest to it; a hand not found
    scores 0, so a detector that loses hands is penalised.
    """
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
        return LabelledPck(math.nan, 0, 0)
    return LabelledPck(pck(np.stack(predicted), np.stack(target), np.stack(boxes), alpha), len(target), found,
                       alpha)


def evaluate_models(detector: HandDetector, estimator: PoseEstimator, folder: Path, config: Config,
                    targets: Sequence[InputSpec], checks: Sequence[InputSpec], labelled: Sequence[CocoImage],
                    replay_options: ReplaySettings, pck_alpha: float) -> EvaluateResult:
    """Replay ``targets`` (into ``folder/eval``) and ``checks`` (``folder/eval_checks``) with these
    models at ``config``'s thresholds, and score PCK on ``labelled``; the measure is the targets'
    detection rate."""
    replayed = replay(targets, folder / "eval", config, detector, estimator, replay_options)
    result = EvaluateResult(measure=replayed.detection_rate, targets=replay_record(replayed))
    if checks:
        result.checks = replay_record(replay(checks, folder / "eval_checks", config, detector, estimator,
                                             replay_options))
    if labelled:
        result.pck = labelled_pck(detector, estimator, labelled, pck_alpha)
    return result
