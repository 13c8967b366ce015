"""Anchor recordings: what the initial models already see, kept in every round's training set.

Self-training on one cell's footage teaches the models that cell: its gloves, its camera, and
its hand size. The anchor recordings (bare hands the initial models handle) are labelled once by
those models and mixed into every round, so that the fine-tuned models keep what they knew.
One thing they cannot keep that way is scale: a cell's camera shows hands at one size, and a
detector fine-tuned on it forgets hands that fill the picture (measured on the labelled
close-ups: 2 of 7 hands still found). So each anchor hand also enters as zoomed-in copies, at
sizes the recordings do not show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from hand_pose_refiner.atomic import atomic_write_json, commit_dir, fresh_partial_dir
from hand_pose_refiner.coco import CocoImage, build_coco
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.hands import FrameHands, boxes_from_keypoints
from hand_pose_refiner.images import read_bgr
from hand_pose_refiner.refinement.cache import JPEG_QUALITY
from hand_pose_refiner.refinement.replay import ANNOTATIONS
from hand_pose_refiner.skeleton import KeypointState

ZOOM_COPIES = 1  # zoomed copies of each anchor hand
ZOOM_HAND_SHARE = (0.2, 0.9)  # the hand's extent over the copy's side (log-uniform)
ZOOM_SIZE = 320  # side of a copy in pixels


def zoom_window(keypoints: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float] | None:
    """A square ``(x, y, side)`` around one hand in which it fills a random share of the side."""
    labelled = keypoints[np.isfinite(keypoints).all(axis=1)]
    if len(labelled) < 2:
        return None
    low, high = labelled.min(axis=0), labelled.max(axis=0)
    extent = max(float((high - low).max()), 1.0)
    side = extent / math.exp(rng.uniform(*np.log(ZOOM_HAND_SHARE)))
    centre = (low + high) / 2 + rng.uniform(-0.5, 0.5, 2) * (side - extent)
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def zoomed_hands(hands: FrameHands, window: tuple[float, float, float]) -> FrameHands:
    """``hands`` in the pixels of the zoomed copy; keypoints outside it become missing."""
    x, y, side = window
    scale = ZOOM_SIZE / side
    points = (hands.keypoints - np.array([x, y], np.float32)) * scale
    inside = np.isfinite(points).all(axis=-1) & (points >= 0).all(axis=-1) & (points < ZOOM_SIZE).all(axis=-1)
    points[~inside] = np.nan
    states = np.where(inside, hands.keypoint_states, np.uint8(KeypointState.MISSING)).astype(np.uint8)
    moved = replace(hands, image_width=ZOOM_SIZE, image_height=ZOOM_SIZE, keypoints=points.astype(np.float32),
                    keypoint_states=states, boxes=boxes_from_keypoints(points).astype(np.float32))
    return moved.select(inside.sum(axis=1) > 0)


def write_zoomed_copies(images: Sequence[CocoImage], out: Path, seed: int,
                        copies: int = ZOOM_COPIES) -> Path:
    """``copies`` zoomed-in crops of every labelled hand of ``images`` as a COCO dataset in ``out``
    (built in a partial folder and renamed when complete); returns its annotation file."""
    rng = np.random.default_rng(seed)
    partial = fresh_partial_dir(out)
    entries = []
    for item in images:
        try:
            image = read_bgr(item.path)
        except InputError:
            continue
        for hand in range(len(item.hands)):
            for copy in range(copies):
                window = zoom_window(item.hands.keypoints[hand], rng)
                if window is None:
                    continue
                x, y, side = window
                matrix = np.array([[ZOOM_SIZE / side, 0, -x * ZOOM_SIZE / side],
                                   [0, ZOOM_SIZE / side, -y * ZOOM_SIZE / side]], np.float64)
                patch = cv2.warpAffine(image, matrix, (ZOOM_SIZE, ZOOM_SIZE), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT)
                name = f"{item.path.stem}_h{hand}_z{copy}.jpg"
                cv2.imwrite(str(partial / name), patch, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                entries.append((name, zoomed_hands(item.hands, window)))
    atomic_write_json(partial / ANNOTATIONS, build_coco(entries), indent=None)
    commit_dir(out, replace=True)
    return out / ANNOTATIONS
