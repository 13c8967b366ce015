"""The report's close-ups: every accepted hand zoomed with its skeleton, one JPEG each.

A hand a few pixels wide cannot be judged at frame scale, so every hand of each round's
pseudo-labels and of the kept round's evaluation is also shown as a zoomed crop
(``report_crops/<section>/``), captioned with its frame and scores.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hand_pose_refiner.atomic import commit_dir, fresh_partial_dir
from hand_pose_refiner.drawing import hand_caption, hand_crop
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.refinement.records import hands_from_json
from hand_pose_refiner.refinement.replay import PREDICTIONS
from hand_pose_refiner.refinement.report_data import prediction_lines

CROPS_FOLDER = "report_crops"


@dataclass(frozen=True)
class HandCrop:
    """One accepted hand's close-up: its JPEG (relative to the run folder), frame and scores."""

    path: str
    frame: str
    caption: str


@dataclass(frozen=True)
class CropSection:
    """The close-ups of one replay folder's accepted hands."""

    name: str
    title: str
    crops: list[HandCrop]


def _scores(line: dict[str, Any], index: int) -> str:
    """A hand's detection score and mean keypoint score (over its predicted keypoints)."""
    hand = line["filtered"][index]
    keypoint_scores = [v for v in hand["keypoint_scores"] if v is not None]
    mean = float(np.mean(keypoint_scores)) if keypoint_scores else float("nan")
    return f"det {hand['score']:.2f} kp {mean:.2f}"


def hand_crops(replay_dir: Path, out_dir: Path, run_dir: Path) -> list[HandCrop]:
    """Write a close-up of every accepted hand of a replay folder into ``out_dir`` (built aside
    and renamed when complete); the crops in frame order."""
    partial = fresh_partial_dir(out_dir)
    crops = []
    for line in prediction_lines(replay_dir):
        if not line["filtered"]:
            continue
        image = read_rgb(replay_dir / line["file_name"])
        hands = hands_from_json(line["filtered"], line["stamp_ns"], line["width"], line["height"])
        frame = Path(line["file_name"]).stem
        for index in range(len(hands)):
            crop = hand_crop(image, hands, index)
            if crop is None:
                continue
            name = f"{frame}_{index}.jpg"
            cv2.imwrite(str(partial / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            crops.append(HandCrop(str((out_dir / name).relative_to(run_dir)), frame,
                                  f"{hand_caption(hands, index)} {_scores(line, index)}"))
    commit_dir(out_dir, replace=True)
    return crops


def _crop_sources(run_dir: Path, best: int) -> list[tuple[str, str, Path]]:
    """``(name, title, replay folder)``: each round's pseudo-labels, then the kept round's evaluation."""
    rounds = sorted(int(path.parent.parent.name[4:]) for path in run_dir.glob(f"iter*/pseudo/{PREDICTIONS}"))
    sources = [(f"iter{k}_pseudo", f"Round {k}: pseudo-labels", run_dir / f"iter{k}" / "pseudo")
               for k in rounds]
    if (run_dir / f"iter{best}" / "eval" / PREDICTIONS).is_file():
        sources.append((f"iter{best}_eval", f"Kept round {best}: evaluation (live thresholds)",
                        run_dir / f"iter{best}" / "eval"))
    return sources


def crop_sections(run_dir: Path, best: int) -> list[CropSection]:
    """Close-ups of every accepted hand: each round's pseudo-labels and the kept round's evaluation
    (``report_crops/<name>/``; folders of sections no longer shown are removed)."""
    folder = run_dir / CROPS_FOLDER
    sections = [CropSection(name, title, hand_crops(replay_dir, folder / name, run_dir))
                for name, title, replay_dir in _crop_sources(run_dir, best)]
    for stale in set(folder.glob("*")) - {folder / section.name for section in sections}:
        shutil.rmtree(stale, ignore_errors=True)
    return sections
