"""Filter tuning: how many good poses a setting keeps against how many bad ones it lets through.

Good poses are labelled hands (COCO files), multiplied by random similarity transforms (rotation,
scale, position) so that a handful of labelled images gives hundreds of poses. Bad poses are the
same hands corrupted the ways pose models fail (:mod:`hand_pose_refiner.corruption`). For each
parameter of a grid, the spatial filter runs with that one value changed from the base config;
the temporal filter's speed limit is swept on short synthetic sequences made from the labelled
poses with single-frame spikes injected. With a model, known-bad poses also come from its own real
predictions (:func:`predicted_poses`): the labelled images are rotated, scaled, partly covered and
blurred, and each predicted hand is judged by its PCK against the moved label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_refiner.atomic import atomic_write_text, atomic_write_with
from hand_pose_refiner.coco import CocoImage, load_coco
from hand_pose_refiner.config import Config, SpatialFilterConfig
from hand_pose_refiner.corruption import FRAME_CORRUPTIONS, corrupt, spike
from hand_pose_refiner.filters.spatial import SpatialFilter
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter
from hand_pose_refiner.hands import FrameHands, boxes_from_keypoints
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import pck, rejection_precision_recall
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.skeleton import INTERPOLATED, NUM_KEYPOINTS, REJECTED

SPATIAL_GRID: dict[str, tuple[float, ...]] = {
    "bone_ratio_tolerance": (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0),
    "max_backward_bend_deg": (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 130.0),
    "max_bone_length_fraction": (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
}
SPEED_GRID: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0)


@dataclass(frozen=True)
class LabelledPose:
    """One labelled hand: keypoints (NaN where unlabelled) and the size of its image."""

    keypoints: np.ndarray
    image_size: tuple[int, int]


@dataclass(frozen=True)
class SweepPoint:
    """The filters' outcome with one parameter set to one value."""

    parameter: str
    value: float
    kept_good: float  # fraction of good poses (or clean keypoints) accepted
    let_through_bad: float  # fraction of bad poses (or spiked keypoints) accepted
    let_through_by_kind: dict[str, float]
    rejection_precision: float
    rejection_recall: float


def load_labelled_poses(files: Sequence[Path], tip_first_files: Sequence[Path] = (),
                        min_labelled: int = 15) -> list[LabelledPose]:
    """Every hand with at least ``min_labelled`` labelled keypoints in the COCO files."""
    poses = []
    for path, tip_first in [(p, False) for p in files] + [(p, True) for p in tip_first_files]:
        for image in load_coco(path, tip_first=tip_first):
            for keypoints in image.hands.keypoints:
                if np.isfinite(keypoints).all(axis=-1).sum() >= min_labelled:
                    poses.append(LabelledPose(keypoints.astype(np.float64),
                                              (image.hands.image_width, image.hands.image_height)))
    return poses


def augment(poses: Sequence[LabelledPose], copies: int, rng: np.random.Generator) -> list[LabelledPose]:
    """Each pose plus ``copies`` random similarity transforms of it that stay inside its image."""
    result = list(poses)
    for pose in poses:
        width, height = pose.image_size
        labelled = np.isfinite(pose.keypoints).all(axis=-1)
        center = pose.keypoints[labelled].mean(axis=0)
        for _ in range(copies):
            angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.6, 1.4)
            moved = (pose.keypoints - center) @ _rotation(angle).T * scale
            low, high = np.nanmin(moved, axis=0), np.nanmax(moved, axis=0)
            span = np.array([width, height]) - (high - low)
            offset = -low + rng.uniform(0, np.maximum(span, 0))
            result.append(LabelledPose(moved + offset, pose.image_size))
    return result


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _frame(pose: LabelledPose, keypoints: np.ndarray | None = None, stamp_ns: int = 0,
           track_id: int = -1) -> FrameHands:
    """A one-hand frame of confident keypoints (unlabelled ones MISSING)."""
    points = pose.keypoints if keypoints is None else keypoints
    labelled = np.isfinite(points).all(axis=-1)
    return FrameHands(stamp_ns, pose.image_size[0], pose.image_size[1], points[None],
                      keypoint_scores=np.where(labelled, 0.9, 0.0)[None],
                      keypoint_states=np.where(labelled, 0, 3)[None],
                      detection_scores=np.array([0.9], np.float32), track_ids=np.array([track_id], np.int64))


def _with_value(base: Config, parameter: str, value: float) -> SpatialFilterConfig:
    """``base``'s spatial filter settings with ``parameter`` (a field name) set to ``value``."""
    changed: dict[str, Any] = {parameter: value}
    return replace(base.spatial_filter, **changed)


def spatial_sweep(good: Sequence[LabelledPose], base: Config, rng: np.random.Generator,
                  grid: dict[str, tuple[float, ...]] = SPATIAL_GRID) -> list[SweepPoint]:
    """Spatial filter outcome for each value of each parameter in ``grid``."""
    good_frames = [_frame(p) for p in good]
    bad_frames = [(kind, _frame(p, corrupt(p.keypoints, kind, rng, p.image_size)))
                  for p in good for kind in FRAME_CORRUPTIONS]
    points = []
    for parameter, values in grid.items():
        for value in values:
            stats = RejectionStats("tuning", logger=None)
            spatial = SpatialFilter(_with_value(base, parameter, value), stats)
            kept_good = [len(spatial(f).accepted) == 1 for f in good_frames]
            kept_bad = [len(spatial(f).accepted) == 1 for _, f in bad_frames]
            points.append(_point(f"spatial_filter.{parameter}", value, kept_good, kept_bad,
                                 [kind for kind, _ in bad_frames]))
    return points


def _point(parameter: str, value: float, kept_good: list[bool], kept_bad: list[bool],
           kinds: list[str]) -> SweepPoint:
    kept = np.array(kept_good + kept_bad)
    bad = np.array([False] * len(kept_good) + [True] * len(kept_bad))
    precision, recall = rejection_precision_recall(~kept, bad)
    by_kind = {kind: float(np.mean([k for k, name in zip(kept_bad, kinds, strict=True) if name == kind]))
               for kind in dict.fromkeys(kinds)}
    return SweepPoint(parameter, float(value), float(np.mean(kept_good)), float(np.mean(kept_bad)),
                      by_kind, precision, recall)


def _sequence(pose: LabelledPose, rng: np.random.Generator, frames: int = 30
              ) -> tuple[list[FrameHands], np.ndarray]:
    """A hand drifting and turning at ~30 fps (irregular stamps), with single-frame spikes.

    Returns the frames (track id 0) and a ``(frames, 21)`` mask of the spiked keypoints.
    """
    labelled = np.isfinite(pose.keypoints).all(axis=-1)
    center = pose.keypoints[labelled].mean(axis=0)
    stamps = np.cumsum(rng.uniform(0.025, 0.045, frames))
    velocity, turn = rng.normal(0, 40, 2), rng.normal(0, 0.5)
    spiked = np.zeros((frames, NUM_KEYPOINTS), bool)
    result = []
    for index, t in enumerate(stamps):
        keypoints = (pose.keypoints - center) @ _rotation(turn * t).T + center + velocity * t
        keypoints = keypoints + rng.normal(0, 0.5, keypoints.shape)
        if 2 <= index < frames - 2 and rng.random() < 0.15:
            corrupted = spike(keypoints, rng)
            spiked[index] = np.any(corrupted != keypoints, axis=-1) & labelled
            keypoints = corrupted
        result.append(_frame(pose, keypoints, stamp_ns=round(t * 1e9), track_id=0))
    return result, spiked


def speed_sweep(good: Sequence[LabelledPose], base: Config, rng: np.random.Generator,
                speeds: tuple[float, ...] = SPEED_GRID) -> list[SweepPoint]:
    """Temporal filter outcome per keypoint speed limit: spikes caught against clean keypoints lost."""
    sequences = [_sequence(p, rng) for p in good]
    points = []
    for speed in speeds:
        config = replace(base.temporal_filter, max_keypoint_speed=speed, smoothing=False)
        kept_clean: list[bool] = []
        kept_spiked: list[bool] = []
        for frames, spiked in sequences:
            temporal = TemporalFilter(config, replace(base.tracking, min_hits=1), FilterMode.OFFLINE,
                                      RejectionStats("tuning", logger=None))
            out = temporal.process(frames)
            for frame, spikes, original in zip(out, spiked, frames, strict=True):
                if len(frame) == 0:
                    continue
                states = frame.keypoint_states[0]
                flagged = (states == REJECTED) | (states == INTERPOLATED)
                labelled = np.isfinite(original.keypoints[0]).all(axis=-1)
                kept_spiked += (~flagged[spikes]).tolist()
                kept_clean += (~flagged[labelled & ~spikes]).tolist()
        points.append(_point("temporal_filter.max_keypoint_speed", speed, kept_clean, kept_spiked,
                             ["spike"] * len(kept_spiked)))
    return points


def write_report(points: Sequence[SweepPoint], out_dir: Path) -> tuple[Path, Path]:
    """``tune_filters.json`` and ``tune_filters.png`` (one trade-off curve per parameter)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "tune_filters.json", out_dir / "tune_filters.png"
    atomic_write_text(json_path, json.dumps([asdict(p) for p in points], indent=2))
    parameters = list(dict.fromkeys(p.parameter for p in points))
    figure, axes = plt.subplots(1, len(parameters), figsize=(4.5 * len(parameters), 4.2), squeeze=False)
    for axis, parameter in zip(axes[0], parameters, strict=True):
        series = [p for p in points if p.parameter == parameter]
        axis.plot([p.let_through_bad for p in series], [p.kept_good for p in series], marker="o")
        for p in series:
            axis.annotate(f"{p.value:g}", (p.let_through_bad, p.kept_good), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
        whole_poses = not parameter.startswith("temporal")
        axis.set_xlabel("bad poses let through" if whole_poses else "spiked keypoints kept")
        axis.set_ylabel("good poses kept" if whole_poses else "clean keypoints kept")
        section, name = parameter.split(".", 1)
        axis.set_title(f"{name} (model predictions)" if section == "model" else name, fontsize=9)
        axis.set_xlim(-0.02, 1.02)
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write_with(png_path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
    return json_path, png_path


def format_table(points: Sequence[SweepPoint]) -> str:
    """A plain-text table of the sweep, one row per parameter value."""
    kinds = list(dict.fromkeys(k for p in points for k in p.let_through_by_kind))
    header = f"{'parameter':38s} {'value':>7s} {'kept':>6s} {'bad in':>6s} " + " ".join(
        f"{k[:12]:>12s}" for k in kinds)
    lines = [header, "-" * len(header)]
    for p in points:
        by_kind = " ".join(f"{p.let_through_by_kind.get(k, float('nan')):12.2f}" for k in kinds)
        lines.append(f"{p.parameter:38s} {p.value:7g} {p.kept_good:6.2f} {p.let_through_bad:6.2f} {by_kind}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PredictedPose:
    """One hand the models predicted on a transformed labelled image, judged against the label.

    ``bad`` is True when the prediction's PCK@0.2 (box-normalised) against the transformed label
    is below :data:`BAD_PCK` (a pose the filters should drop), False when it is at least
    :data:`GOOD_PCK`; predictions in between are not used.
    """

    frame: FrameHands
    pck: float
    bad: bool


GOOD_PCK, BAD_PCK = 0.8, 0.5


def predicted_poses(images: Sequence[CocoImage], detector: HandDetector, estimator: PoseEstimator,
                    copies: int, rng: np.random.Generator) -> list[PredictedPose]:
    """Known-good and known-bad poses from real model predictions (no corruption tool involved).

    Each labelled image is transformed ``copies`` times the ways cell footage differs from the
    photographs (rotation, scale, a part of the hand covered, blur); the same transform moves its
    labels, the detector and pose estimator run on it, and every predicted hand is scored against
    the nearest moved label. The models' own failures on hard views give the bad poses.
    """
    import cv2

    poses = []
    for item in images:
        image = read_rgb(item.path)
        for _ in range(copies):
            warped, matrix = _random_view(image, item.hands.keypoints, rng)
            truth = item.hands.keypoints @ matrix[:, :2].T + matrix[:, 2]
            if rng.random() < 0.5:
                warped = _occlude(warped, truth, rng)
            if rng.random() < 0.3:
                warped = cv2.GaussianBlur(warped, (0, 0), rng.uniform(1.0, 3.0))
            hands = estimator.estimate([warped], detector.detect([warped]))[0]
            boxes = boxes_from_keypoints(truth)
            for k in range(len(hands)):
                score = max((pck(hands.keypoints[k:k + 1], truth[j:j + 1], boxes[j:j + 1])
                             for j in range(len(truth))), default=0.0)
                if BAD_PCK <= score < GOOD_PCK:
                    continue
                poses.append(PredictedPose(hands.select([k]), score, score < BAD_PCK))
    return poses


def _random_view(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The image rotated (up to 180 degrees) and scaled (0.6-1.4) about its labelled hands."""
    import cv2

    labelled = np.isfinite(keypoints).all(axis=-1)
    centre = keypoints[labelled].mean(axis=0) if labelled.any() else np.array(image.shape[1::-1]) / 2
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rng.uniform(-180, 180),
                                     rng.uniform(0.6, 1.4))
    warped = cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    return warped, matrix


def _occlude(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey block over 20-50% of one hand's box (a tool, a part, the other hand)."""
    box = boxes_from_keypoints(keypoints)[rng.integers(len(keypoints))]
    if not np.isfinite(box).all():
        return image
    width, height = box[2] - box[0], box[3] - box[1]
    fraction = np.sqrt(rng.uniform(0.2, 0.5))
    w, h = width * fraction, height * fraction
    x0, y0 = box[0] + rng.uniform(0, width - w), box[1] + rng.uniform(0, height - h)
    covered = image.copy()
    covered[max(int(y0), 0):max(int(y0 + h), 0), max(int(x0), 0):max(int(x0 + w), 0)] = 128
    return covered


def prediction_check(poses: Sequence[PredictedPose], base: Config,
                     grid: dict[str, tuple[float, ...]] = SPATIAL_GRID) -> list[SweepPoint]:
    """The spatial filter's outcome on real predictions, for each value of each parameter.

    ``let_through_by_kind`` has a single kind, ``model``: the bad predictions let through.
    """
    good = [p.frame for p in poses if not p.bad]
    bad = [p.frame for p in poses if p.bad]
    points = []
    for parameter, values in grid.items():
        for value in values:
            stats = RejectionStats("tuning", logger=None)
            spatial = SpatialFilter(_with_value(base, parameter, value), stats)
            kept_good = [len(spatial(f).accepted) == 1 for f in good]
            kept_bad = [len(spatial(f).accepted) == 1 for f in bad]
            points.append(_point(f"model.{parameter}", value, kept_good, kept_bad, ["model"] * len(bad)))
    return points
