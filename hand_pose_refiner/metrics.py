"""Keypoint accuracy metrics on ``(n, 21, 2)`` pixel arrays, NaN-aware.

Only labelled keypoints count: a ground-truth keypoint that is NaN (not labelled) is left out,
a predicted keypoint that is NaN (not found) counts as wrong for PCK and is left out of EPE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.hands import box_iou


def _pairs(predicted: npt.ArrayLike, target: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(predicted, np.float64)
    true = np.asarray(target, np.float64)
    if pred.shape != true.shape or pred.shape[-1] != 2:
        raise ValueError(f"predicted {pred.shape} and target {true.shape} must both be (..., 2)")
    return pred, true


def keypoint_distances(predicted: npt.ArrayLike, target: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Euclidean distance of each keypoint, shape ``(...)``; NaN where either side is NaN."""
    pred, true = _pairs(predicted, target)
    return np.hypot(*(pred - true).transpose(-1, *range(pred.ndim - 1)))


def box_sizes(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``max(width, height)`` of ``x_min, y_min, x_max, y_max`` boxes: the PCK normaliser."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def pck(predicted: npt.ArrayLike, target: npt.ArrayLike, boxes: npt.ArrayLike,
        alpha: float = 0.2) -> float:
    """Percentage of correct keypoints, box-normalised (as mmpose's ``norm_item='bbox'``).

    A keypoint is correct when its distance to the label is below ``alpha`` times the longer
    side of the hand's box. ``predicted``/``target`` are ``(n, k, 2)``, ``boxes`` ``(n, 4)``.
    Returns the fraction over all labelled keypoints (NaN when there are none).
    """
    pred, true = _pairs(predicted, target)
    pred, true = pred.reshape(-1, pred.shape[-2], 2), true.reshape(-1, true.shape[-2], 2)
    sizes = box_sizes(boxes)
    if sizes.shape[0] != pred.shape[0]:
        raise ValueError(f"{pred.shape[0]} hands but {sizes.shape[0]} boxes")
    labelled = np.isfinite(true).all(axis=-1)
    if not labelled.any():
        return float("nan")
    distance = keypoint_distances(pred, true)
    correct = np.isfinite(distance) & (distance < alpha * sizes[:, None])
    return float(correct[labelled].mean())


def epe(predicted: npt.ArrayLike, target: npt.ArrayLike) -> float:
    """End-point error: mean pixel distance over keypoints labelled and predicted (NaN if none)."""
    distance = keypoint_distances(predicted, target)
    finite = np.isfinite(distance)
    return float(distance[finite].mean()) if finite.any() else float("nan")


# Wrist -> middle-finger MCP: the reference bone of bone-normalised PCK (like PCKh's head size).
REFERENCE_BONE = (0, 9)


def pck_bone(predicted: npt.ArrayLike, target: npt.ArrayLike, alpha: float = 0.5,
             bone: tuple[int, int] = REFERENCE_BONE) -> float:
    """PCK normalised by the label's reference bone length instead of its box.

    Less sensitive than the box to how far the fingers are spread. Hands whose reference bone is
    not labelled are left out. Returns NaN when no keypoint counts.
    """
    pred, true = _pairs(predicted, target)
    pred, true = pred.reshape(-1, pred.shape[-2], 2), true.reshape(-1, true.shape[-2], 2)
    reference = keypoint_distances(true[:, bone[0]], true[:, bone[1]])
    usable = np.isfinite(reference) & (reference > 0)
    labelled = np.isfinite(true).all(axis=-1) & usable[:, None]
    if not labelled.any():
        return float("nan")
    distance = keypoint_distances(pred, true)
    correct = np.isfinite(distance) & (distance < alpha * np.where(usable, reference, np.nan)[:, None])
    return float(correct[labelled].mean())


def pck_curve(predicted: npt.ArrayLike, target: npt.ArrayLike, boxes: npt.ArrayLike,
              alphas: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Box-normalised PCK at each threshold in ``alphas``."""
    return np.array([pck(predicted, target, boxes, float(alpha)) for alpha in np.asarray(alphas)])


def pck_auc(predicted: npt.ArrayLike, target: npt.ArrayLike, boxes: npt.ArrayLike,
            max_alpha: float = 0.5, steps: int = 51) -> float:
    """Area under the box-normalised PCK curve for alpha in [0, max_alpha], scaled to 0..1."""
    alphas = np.linspace(0.0, max_alpha, steps)
    curve = pck_curve(predicted, target, boxes, alphas)
    return float(np.trapezoid(curve, alphas) / max_alpha)


def detection_rate(hands_per_frame: Sequence[int] | npt.ArrayLike) -> float:
    """Fraction of frames with at least one accepted hand (NaN for no frames)."""
    counts = np.asarray(hands_per_frame)
    return float((counts > 0).mean()) if counts.size else float("nan")


def detection_precision_recall(predicted: Sequence[npt.ArrayLike], labelled: Sequence[npt.ArrayLike],
                               iou_threshold: float = 0.5) -> tuple[float, float]:
    """Precision and recall of predicted hand boxes against labelled ones, per image.

    ``predicted[i]`` and ``labelled[i]`` are the ``(n, 4)`` xyxy boxes of image ``i``; predictions
    should be sorted best first. Each prediction matches at most one unmatched label with IoU >=
    ``iou_threshold`` (greedy, as in COCO). NaN where the denominator is zero.
    """
    if len(predicted) != len(labelled):
        raise ValueError(f"{len(predicted)} predicted images but {len(labelled)} labelled images")
    true_positives = predicted_count = labelled_count = 0
    for boxes, labels in zip(predicted, labelled, strict=True):
        overlap = box_iou(boxes, labels)
        predicted_count += overlap.shape[0]
        labelled_count += overlap.shape[1]
        taken = np.zeros(overlap.shape[1], bool)
        for row in overlap:
            candidates = np.where(taken, -1.0, row)
            best = int(np.argmax(candidates)) if candidates.size else -1
            if best >= 0 and candidates[best] >= iou_threshold:
                taken[best] = True
                true_positives += 1
    precision = true_positives / predicted_count if predicted_count else float("nan")
    recall = true_positives / labelled_count if labelled_count else float("nan")
    return precision, recall


def rejection_precision_recall(rejected: npt.ArrayLike, known_bad: npt.ArrayLike) -> tuple[float, float]:
    """How well a filter's rejections find known-bad poses.

    Precision: the fraction of rejected poses that are bad. Recall: the fraction of bad poses
    that are rejected. Both boolean arrays over the same poses; NaN where undefined.
    """
    rejected = np.asarray(rejected, bool)
    known_bad = np.asarray(known_bad, bool)
    if rejected.shape != known_bad.shape:
        raise ValueError(f"rejected {rejected.shape} and known_bad {known_bad.shape} differ")
    caught = int((rejected & known_bad).sum())
    precision = caught / rejected.sum() if rejected.any() else float("nan")
    recall = caught / known_bad.sum() if known_bad.any() else float("nan")
    return float(precision), float(recall)
