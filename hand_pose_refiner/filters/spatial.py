"""The spatial filter: drop hands that are anatomically impossible in a single frame.

Rules (``spatial_filter.rules`` switches each one; reasons as counted in the stats):

==============  =============================================================  =====================
rule            rejects                                                        reason
==============  =============================================================  =====================
keypoint_score  keypoints scored below ``min_keypoint_score`` (state REJECTED)  keypoint_score (kp)
hand_score      hands whose detection score is below ``min_hand_score``         hand_score
min_keypoints   hands left with fewer than ``min_keypoints`` valid keypoints    min_keypoints
hand_size       keypoint-box diagonal outside the pixel / image-fraction range  hand_too_small/large
bone_length     a bone longer than ``max_bone_length_px`` or the image fraction bone_length
bone_ratio      a bone / palm size ratio above the anatomical maximum           bone_ratio
joint_angle     a finger PIP/DIP bent backwards past ``max_backward_bend_deg``  joint_angle
duplicate       a second detection of the same hand (the weaker one)            duplicate
max_hands       hands beyond the ``max_hands`` best                            max_hands
==============  =============================================================  =====================

Non-finite keypoints are always marked MISSING (reason ``non_finite_keypoint``). A hand gets the
first reason it fails, in the order above. The filter never moves a keypoint: it only changes
keypoint states and drops hands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.config import SpatialFilterConfig
from hand_pose_refiner.filters.anatomy import (
    BEND_JOINTS,
    BONE_RATIO_MAX,
    MCP_SPAN,
    MIN_BEND_SEGMENT,
    PALM_BONES,
    PALM_LENGTH_PER_MCP_SPAN,
)
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands, box_iou, boxes_from_keypoints
from hand_pose_refiner.skeleton import BONES, INTERPOLATED, MISSING, REJECTED

HAND_REASONS = ("hand_score", "min_keypoints", "hand_too_small", "hand_too_large", "bone_length",
                "bone_ratio", "joint_angle", "duplicate", "max_hands")
_CODE = {reason: code for code, reason in enumerate(HAND_REASONS)}
_OK = -1


@dataclass(frozen=True)
class SpatialResult:
    """The accepted hands of a frame, and the rejected ones with their reasons."""

    accepted: FrameHands
    rejected: FrameHands
    rejected_reasons: tuple[str, ...]


def clean_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as probabilities: NaN counts as 0, and values are clipped to [0, 1]."""
    clipped = np.clip(scores, 0.0, 1.0)
    clipped[np.isnan(clipped)] = 0.0
    return clipped


def valid_keypoints(states: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Keypoints whose coordinates can be trusted: observed or interpolated."""
    return states <= INTERPOLATED  # OBSERVED = 0, INTERPOLATED = 1


def nan_median(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (rows without any value give NaN).

    A few times faster than ``np.nanmedian`` on the small arrays of the filters' hot path.
    """
    ordered = np.sort(values, axis=-1).reshape(-1, values.shape[-1])  # NaN sorts last
    count = (~np.isnan(ordered)).sum(axis=-1)
    rows = np.arange(len(ordered))
    middle = (ordered[rows, np.maximum((count - 1) // 2, 0)] + ordered[rows, count // 2 - (count == 0)]) / 2
    return np.where(count > 0, middle, np.nan).reshape(values.shape[:-1])


def palm_sizes(keypoints: np.ndarray, valid: np.ndarray, lengths: np.ndarray,
               bone_valid: np.ndarray) -> np.ndarray:
    """Per hand, the palm size the bone ratios are measured against (0 where unknown).

    The median wrist-to-MCP distance (at least two of them labelled), or the MCP span (index to
    pinky MCP) times :data:`PALM_LENGTH_PER_MCP_SPAN`, whichever is larger: a palm tilted away
    from the camera shortens one of the two but rarely both.
    """
    along = nan_median(np.where(bone_valid[:, PALM_BONES], lengths[:, PALM_BONES], np.nan))
    along = np.where(bone_valid[:, PALM_BONES].sum(axis=1) >= 2, along, 0.0)
    span_vector = keypoints[:, MCP_SPAN[1]] - keypoints[:, MCP_SPAN[0]]
    span = np.hypot(span_vector[:, 0], span_vector[:, 1])
    span = np.where(valid[:, MCP_SPAN[0]] & valid[:, MCP_SPAN[1]], span, 0.0)
    return np.maximum(along, PALM_LENGTH_PER_MCP_SPAN * span)


def backward_bend(keypoints: np.ndarray, valid: np.ndarray, palm_sizes: np.ndarray | None = None,
                  min_segment: float = MIN_BEND_SEGMENT) -> np.ndarray:
    """Per hand, the largest bend (radians) of a finger PIP/DIP against the hand's flexion.

    The flexion direction in the image is the sign of the summed signed joint angles of the four
    fingers (a real hand curls all of them the same way); a joint turning the other way is bent
    backwards. With ``palm_sizes`` (pixels), a joint counts only where both finger segments beside
    it are at least ``min_segment`` palm sizes long: the direction of a short, foreshortened
    segment is mostly keypoint noise. Returns 0 where it cannot be told.
    """
    prev, joint, after = BEND_JOINTS[:, 0], BEND_JOINTS[:, 1], BEND_JOINTS[:, 2]
    first = keypoints[:, joint] - keypoints[:, prev]
    second = keypoints[:, after] - keypoints[:, joint]
    cross = first[..., 0] * second[..., 1] - first[..., 1] * second[..., 0]
    dot = (first * second).sum(axis=-1)
    angles = np.arctan2(cross, dot)
    usable = valid[:, prev] & valid[:, joint] & valid[:, after]
    if palm_sizes is not None:
        shortest = np.minimum(np.hypot(*np.moveaxis(first, -1, 0)), np.hypot(*np.moveaxis(second, -1, 0)))
        usable &= shortest >= min_segment * np.asarray(palm_sizes)[:, None]
    angles = np.where(usable, angles, 0.0)
    direction = np.sign(angles.sum(axis=1, keepdims=True))
    return np.clip(-(angles * direction), 0.0, None).max(axis=1, initial=0.0)


class SpatialFilter:
    """Applies the configured anatomical rules to one frame's hands at a time."""

    def __init__(self, config: SpatialFilterConfig, stats: RejectionStats | None = None) -> None:
        self.config = config
        self.stats = stats if stats is not None else RejectionStats("spatial_filter")
        self._rules = frozenset(config.rules)
        self._max_backward_rad = np.deg2rad(config.max_backward_bend_deg)
        self._ratio_limits = BONE_RATIO_MAX * config.bone_ratio_tolerance

    def __call__(self, hands: FrameHands) -> SpatialResult:
        count = len(hands)
        self.stats.add("frames")
        self.stats.add("hands_in", count)
        if not self.config.enabled or count == 0:
            self.stats.add("hands_out", count)
            return SpatialResult(hands, hands.select(np.zeros(count, bool)), ())

        keypoints, states = self._clean_keypoints(hands)
        valid = valid_keypoints(states)
        reasons = np.full(count, _OK, np.int64)
        geometry = keypoints.astype(np.float64)  # float32 extremes would overflow in squares
        boxes = boxes_from_keypoints(geometry, valid, empty=0.0)
        self._check_hands(hands, geometry, valid, boxes, reasons)
        self._check_duplicates_and_count(hands, geometry, valid, boxes, reasons)

        cleaned = hands.derive(keypoints=keypoints, keypoint_states=states)
        accepted = reasons == _OK
        if accepted.all():
            self.stats.add("hands_out", count)
            return SpatialResult(cleaned, cleaned.select(~accepted), ())
        for code in np.unique(reasons[~accepted]):
            self.stats.reject(HAND_REASONS[code], int(np.sum(reasons == code)))
        self.stats.add("hands_out", int(accepted.sum()))
        return SpatialResult(cleaned.select(accepted), cleaned.select(~accepted),
                             tuple(HAND_REASONS[code] for code in reasons[~accepted]))

    def _clean_keypoints(self, hands: FrameHands) -> tuple[np.ndarray, np.ndarray]:
        """Non-finite keypoints become NaN and MISSING; low-scored ones REJECTED."""
        keypoints = hands.keypoints
        states = hands.keypoint_states.copy()
        finite = np.isfinite(keypoints).all(axis=-1)
        if not finite.all():
            bad = ~finite & (states != MISSING)
            self.stats.reject("non_finite_keypoint", int(bad.sum()), "NaN or inf coordinates")
            states[~finite] = MISSING
            keypoints = np.where(finite[..., None], keypoints, np.float32(np.nan))
        if "keypoint_score" in self._rules:
            scores = clean_scores(hands.keypoint_scores)
            low = (scores < self.config.min_keypoint_score) & valid_keypoints(states)
            if low.any():
                states[low] = REJECTED
                self.stats.reject("keypoint_score", int(low.sum()))
        return keypoints, states

    def _check_hands(self, hands: FrameHands, keypoints: np.ndarray, valid: np.ndarray,
                     boxes: np.ndarray, reasons: np.ndarray) -> None:
        """Per-hand rules, each marking the hands it fails that have no reason yet."""
        config, rules = self.config, self._rules

        def fail(mask: np.ndarray, reason: str) -> None:
            reasons[(reasons == _OK) & mask] = _CODE[reason]

        if "hand_score" in rules:
            fail(clean_scores(hands.detection_scores) < config.min_hand_score, "hand_score")
        if "min_keypoints" in rules:
            fail(valid.sum(axis=1) < config.min_keypoints, "min_keypoints")
        image_diagonal = float(np.hypot(hands.image_width, hands.image_height))
        if "hand_size" in rules:
            size = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            small = max(config.min_hand_size_px, config.min_hand_size_fraction * image_diagonal)
            fail(size < small, "hand_too_small")
            large = config.max_hand_size_px
            if image_diagonal > 0:
                large = min(large, config.max_hand_size_fraction * image_diagonal)
            fail(size > large, "hand_too_large")
        if {"bone_length", "bone_ratio", "joint_angle"} & rules:
            delta = keypoints[:, BONES[:, 1]] - keypoints[:, BONES[:, 0]]
            lengths = np.hypot(delta[..., 0], delta[..., 1])
            bone_valid = valid[:, BONES[:, 0]] & valid[:, BONES[:, 1]]
            lengths = np.where(bone_valid, lengths, 0.0)
        if "bone_length" in rules:
            limit = config.max_bone_length_px
            if image_diagonal > 0:
                limit = min(limit, config.max_bone_length_fraction * image_diagonal)
            fail(lengths.max(axis=1) > limit, "bone_length")
        if {"bone_ratio", "joint_angle"} & rules:
            palm = palm_sizes(keypoints, valid, lengths, bone_valid)
        if "bone_ratio" in rules:
            fail(self._bone_ratio_too_large(lengths, palm), "bone_ratio")
        if "joint_angle" in rules:
            fail(backward_bend(keypoints, valid, palm) > self._max_backward_rad, "joint_angle")

    def _bone_ratio_too_large(self, lengths: np.ndarray, palm: np.ndarray) -> np.ndarray:
        """Hands with a bone longer than its anatomical maximum relative to the palm size."""
        known = palm > 0
        result = np.zeros(len(lengths), bool)
        if known.any():
            ratios = lengths[known] / palm[known, None]
            result[known] = (ratios > self._ratio_limits).any(axis=1)
        return result

    def _check_duplicates_and_count(self, hands: FrameHands, keypoints: np.ndarray,
                                    valid: np.ndarray, boxes: np.ndarray, reasons: np.ndarray) -> None:
        """Suppress duplicate detections, then keep the ``max_hands`` best survivors."""
        alive = np.flatnonzero(reasons == _OK)
        if alive.size == 0:
            return
        quality = self._quality(hands, valid)[alive]
        alive = alive[np.argsort(-quality, kind="stable")]
        if "duplicate" in self._rules and alive.size > 1:
            alive = self._suppress_duplicates(alive, keypoints, valid, boxes, reasons)
        if "max_hands" in self._rules and alive.size > self.config.max_hands:
            reasons[alive[self.config.max_hands:]] = _CODE["max_hands"]

    @staticmethod
    def _quality(hands: FrameHands, valid: np.ndarray) -> np.ndarray:
        """Ranking score: detection score times the mean score of the valid keypoints."""
        scores = np.where(valid, clean_scores(hands.keypoint_scores), 0.0)
        mean_score = scores.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        return clean_scores(hands.detection_scores) * mean_score

    def _suppress_duplicates(self, ranked: np.ndarray, keypoints: np.ndarray, valid: np.ndarray,
                             boxes: np.ndarray, reasons: np.ndarray) -> np.ndarray:
        """Greedy suppression over hands ranked best first; returns the survivors, ranked."""
        boxes = boxes[ranked]
        iou = box_iou(boxes, boxes)
        size = np.maximum(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1e-6)
        points, mask = keypoints[ranked], valid[ranked]
        both = mask[:, None, :] & mask[None, :, :]
        difference = points[:, None] - points[None, :]
        distance = np.hypot(difference[..., 0], difference[..., 1])
        distance[~both] = 0.0
        mean_distance = (distance * both).sum(-1) / np.maximum(both.sum(-1), 1)
        relative = mean_distance / np.minimum(size[:, None], size[None, :])
        same = (iou > self.config.duplicate_iou) | (
            (both.sum(-1) >= 3) & (relative < self.config.duplicate_keypoint_distance))
        keep = np.ones(len(ranked), bool)
        for i in range(len(ranked)):
            if keep[i]:
                later = same[i, i + 1:]
                keep[i + 1:] &= ~later
        reasons[ranked[~keep]] = _CODE["duplicate"]
        return ranked[keep]
