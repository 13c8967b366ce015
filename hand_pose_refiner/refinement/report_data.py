"""What a refinement run's report says, gathered from ``state.json`` and the replay folders.

One row per evaluated round (:func:`iteration_rows`), one entry per input with its role and the
frames it read (:func:`input_roles`), and the per-frame lines of a replay folder
(:func:`prediction_lines`) that the figures and close-ups draw from.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement.replay import PREDICTIONS
from hand_pose_refiner.refinement.run_state import NETWORKS, RunState
from hand_pose_refiner.refinement.tuning_test_split import SPLITS


def iteration_rows(state: RunState | dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluated round: rates, counts, rejections, confidence, PCK, training sizes.

    ``state`` as :func:`.run_state.read_state` gives it, or its JSON form."""
    if isinstance(state, dict):
        state = RunState.from_json(state)
    rows = []
    for k in state.evaluated_rounds():
        evaluation = state.evaluation(k)
        assert evaluation is not None
        targets = evaluation.targets
        row: dict[str, Any] = {
            "iteration": k,
            "detection_rate": targets.detection_rate,
            "detection_rate_per_input": {i.path: i.detection_rate for i in targets.inputs},
            "frames": targets.frames,
            "accepted_poses": targets.accepted_hands,
            "raw_detections": targets.raw_hands,
            "rejections": targets.rejections,
            "skipped_frames": targets.skipped_frames,  # frames that could not be decoded
            "mean_keypoint_confidence": targets.mean_keypoint_confidence,
            "check_detection_rate": None if evaluation.checks is None else evaluation.checks.detection_rate,
            "pck": evaluation.pck.pck if evaluation.pck is not None else None,
        }
        if k > 0:
            pseudo = state.pseudo_labels(k)
            if pseudo is None:
                raise RefinementStateError(f"round {k} was evaluated but has no pseudo-labels")
            row["models_from"] = pseudo.models_from
            row["pseudo_labels"] = {"thresholds": asdict(pseudo.thresholds) if pseudo.thresholds else None,
                                    "accepted_hands": pseudo.replay.accepted_hands,
                                    "frames_with_hands": pseudo.replay.frames_with_hands,
                                    "rejections": pseudo.replay.rejections}
            for which in NETWORKS:
                tuned = state.fine_tune(k, which)
                if tuned is None:
                    raise RefinementStateError(f"round {k} was evaluated but its {which} was not fine-tuned")
                training = tuned.training
                row[f"{which}_training"] = {
                    "train_images": tuned.train_images, "train_hands": tuned.train_hands,
                    "initial_loss": training.initial_loss if training is not None else None,
                    "final_loss": training.final_loss if training is not None else None,
                    "skipped": tuned.skipped}
        rows.append(row)
    return rows


# What a run does with each role's recordings (the recipe's keys), for the report's input table.
ROLE_USES = {
    "targets": "pseudo-labelled and trained on; the detection rate is measured on them",
    "checks": "evaluated every round, never trained on (no-regression check)",
    "anchors": "labelled once by the initial models, mixed into every round's training set",
    "labelled": "PCK against their labels every round, never trained on",
}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 < 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def frames_used(spec: dict[str, Any]) -> str:
    """Which frames of a recording a run read, in words (from its InputSpec in ``state.json``);
    a half of a folder of stills is named as ``refinement.split`` names it."""
    if "stride" not in spec:
        return "every labelled image"
    stride, offset, cap = spec["stride"], spec.get("offset", 0), spec.get("max_frames")
    if stride == 1 and offset == 0:
        which = "every frame"
    else:
        order = " in name order" if spec.get("stills") else ""
        which = (f"every {_ordinal(stride)} frame from the {_ordinal(offset + 1)} "
                 f"({_ordinal(offset + 1)}, {_ordinal(offset + stride + 1)}, ...{order})")
        if spec.get("stills") and stride == 2 and offset < 2:
            other = SPLITS[1 - offset]
            which += f": the {SPLITS[offset]} half; the {other} half is not read"
    return which + (f", at most {cap}" if cap else "")


def input_roles(state: RunState | dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per input of the run: its role, what the run does with it, which frames it read
    and how many (from round 0's evaluation, where it has one). ``state`` as :func:`iteration_rows`
    takes it."""
    if isinstance(state, dict):
        state = RunState.from_json(state)
    evaluated = state.evaluation(0)
    replays = [evaluated.targets, evaluated.checks] if evaluated is not None else []
    frames = {item.path: item.frames for part in replays if part is not None for item in part.inputs}
    options = state.options
    return [{"role": role, "use": use, "path": spec["path"], "frames_used": frames_used(spec),
             "frames": frames.get(spec["path"])}
            for role, use in ROLE_USES.items() for spec in options.get(role, [])]


def prediction_lines(replay_dir: Path) -> list[dict[str, Any]]:
    """The lines of a replay folder's predictions file, one per frame, in frame order."""
    return [json.loads(line) for line in (replay_dir / PREDICTIONS).read_text().splitlines()]
