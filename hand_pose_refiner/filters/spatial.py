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

from hand_pose_refiner.arrays import all_set, any_set
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
from hand_pose_refiner.hands import FrameHands, box_iou, boxes_from_keypoints, pair_iou
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
    """Scores as probabilities: NaN counts as 0, and values are clipped to [0, 1].

    One ``where`` instead of clip-then-mask: NaN fails ``>= 0`` and becomes 0 with the negatives.
    """
    return np.where(scores >= 0, np.minimum(scores, 1), 0).astype(scores.dtype, copy=False)


def below(scores: np.ndarray, threshold: float) -> np.ndarray:
    """``clean_scores(scores) < threshold`` for a threshold in [0, 1], in one or two numpy calls.

    A NaN or negative score cleans to 0, which is below any positive threshold; a score above 1
    cleans to 1, below none; so for ``0 < threshold <= 1`` the test is "not at least the threshold".
    """
    if 0.0 < threshold <= 1.0:
        return ~(scores >= threshold)
    return clean_scores(scores) < threshold


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
               bone_valid: np.ndarray | None) -> np.ndarray:
    """Per hand, the palm size the bone ratios are measured against (0 where unknown).

    The median wrist-to-MCP distance (at least two of them labelled), or the MCP span (index to
    pinky MCP) times :data:`PALM_LENGTH_PER_MCP_SPAN`, whichever is larger: a palm tilted away
    from the camera shortens one of the two but rarely both. ``bone_valid=None`` says that every
    keypoint is valid (the spatial filter's common case, which then needs no masks).
    """
    if bone_valid is None:
        palm_valid, every_palm_bone = None, True
    else:
        palm_valid = bone_valid[:, PALM_BONES]
        every_palm_bone = all_set(palm_valid)
    if palm_valid is None or every_palm_bone:  # all four known (the common case): the middle two's mean
        ordered = np.sort(lengths[:, PALM_BONES], axis=-1)
        along = (ordered[:, 1] + ordered[:, 2]) / 2
    else:
        along = nan_median(np.where(palm_valid, lengths[:, PALM_BONES], np.nan))
        along = np.where(palm_valid.sum(axis=1) >= 2, along, 0.0)
    span_vector = keypoints[:, MCP_SPAN[1]] - keypoints[:, MCP_SPAN[0]]
    span = np.hypot(span_vector[:, 0], span_vector[:, 1])
    if bone_valid is not None and (not every_palm_bone or not all_set(valid[:, MCP_SPAN])):
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
    points = keypoints[:, BEND_JOINTS]  # (n, 8, 3, 2): previous keypoint, joint, next keypoint
    first = points[:, :, 1] - points[:, :, 0]
    second = points[:, :, 2] - points[:, :, 1]
    first_x, first_y, second_x, second_y = first[..., 0], first[..., 1], second[..., 0], second[..., 1]
    cross = first_x * second_y - first_y * second_x
    dot = first_x * second_x + first_y * second_y
    angles = np.arctan2(cross, dot)
    usable = valid[:, BEND_JOINTS].all(axis=-1) if not all_set(valid) else None  # None: every joint
    if palm_sizes is not None:
        shortest = np.minimum(np.hypot(first_x, first_y), np.hypot(second_x, second_y))
        long_enough = shortest >= min_segment * np.asarray(palm_sizes)[:, None]
        usable = long_enough if usable is None else usable & long_enough
    if usable is not None:
        angles = np.where(usable, angles, 0.0)
    direction = np.sign(angles.sum(axis=1, keepdims=True))
    # np.maximum is what np.clip(x, 0, None) computes, without its Python wrapper.
    return np.maximum(-(angles * direction), 0.0).max(axis=1, initial=0.0)


class SpatialFilter:
    """Applies the configured anatomical rules to one frame's hands at a time.

    Every rule is one vectorised test over all hands of the frame, in the order of the module
    docstring (see :meth:`_check_hands`); the frame runs thousands of times a second, so settings
    are turned into thresholds once here and each frame's arrays are computed once and shared.
    """

    def __init__(self, config: SpatialFilterConfig, stats: RejectionStats | None = None) -> None:
        self.config = config
        self.stats = stats if stats is not None else RejectionStats("spatial_filter")
        self._rules = frozenset(config.rules)
        self._max_backward_rad = np.deg2rad(config.max_backward_bend_deg)
        self._ratio_limits = BONE_RATIO_MAX * config.bone_ratio_tolerance
        self._needs_bones = bool({"bone_length", "bone_ratio", "joint_angle"} & self._rules)
        self._needs_palm = bool({"bone_ratio", "joint_angle"} & self._rules)

    def __call__(self, hands: FrameHands) -> SpatialResult:
        count = len(hands)
        stats = self.stats
        stats.add("frames")
        stats.add("hands_in", count)
        if not self.config.enabled or count == 0:
            stats.add("hands_out", count)
            return SpatialResult(hands, _no_hands(hands), ())

        keypoints, states = self._clean_keypoints(hands)
        valid = valid_keypoints(states)
        geometry = keypoints.astype(np.float64)  # float32 extremes would overflow in squares
        boxes = boxes_from_keypoints(geometry, valid, empty=0.0, finite=True)
        sizes = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        reasons = self._check_hands(hands, geometry, valid, sizes)
        self._check_duplicates_and_count(hands, geometry, valid, boxes, sizes, reasons)

        cleaned = hands.derive(keypoints=keypoints, keypoint_states=states)
        accepted = reasons == _OK
        if all_set(accepted):
            stats.add("hands_out", count)
            return SpatialResult(cleaned, _no_hands(cleaned), ())
        for code in np.unique(reasons[~accepted]):
            stats.reject(HAND_REASONS[code], int(np.sum(reasons == code)))
        stats.add("hands_out", int(accepted.sum()))
        return SpatialResult(cleaned.select(accepted), cleaned.select(~accepted),
                             tuple(HAND_REASONS[code] for code in reasons[~accepted]))

    def _clean_keypoints(self, hands: FrameHands) -> tuple[np.ndarray, np.ndarray]:
        """Non-finite keypoints become NaN and MISSING; low-scored ones REJECTED."""
        keypoints = hands.keypoints
        states = hands.keypoint_states.copy()
        finite_coordinates = np.isfinite(keypoints)
        if not all_set(finite_coordinates):  # the common case, all finite, needs no per-keypoint work
            finite = np.asarray(finite_coordinates.all(axis=-1))
            bad = ~finite & (states != MISSING)
            self.stats.reject("non_finite_keypoint", int(bad.sum()), "NaN or inf coordinates")
            states[~finite] = MISSING
            keypoints = np.where(finite[..., None], keypoints, np.float32(np.nan))
        if "keypoint_score" in self._rules:
            low = below(hands.keypoint_scores, self.config.min_keypoint_score) & valid_keypoints(states)
            if any_set(low):
                states[low] = REJECTED
                self.stats.reject("keypoint_score", int(low.sum()))
        return keypoints, states

    def _check_hands(self, hands: FrameHands, keypoints: np.ndarray, valid: np.ndarray,
                     sizes: np.ndarray) -> np.ndarray:
        """Per-hand rules in order; returns each hand's first failed rule (code), or ``_OK``."""
        config, rules = self.config, self._rules
        failed: list[tuple[np.ndarray, str]] = []  # (hands failing, reason), in rule order
        if "hand_score" in rules:
            failed.append((below(hands.detection_scores, config.min_hand_score), "hand_score"))
        if "min_keypoints" in rules:
            failed.append((valid.sum(axis=1) < config.min_keypoints, "min_keypoints"))
        image_diagonal = float(np.hypot(hands.image_width, hands.image_height))
        if "hand_size" in rules:
            small = max(config.min_hand_size_px, config.min_hand_size_fraction * image_diagonal)
            failed.append((sizes < small, "hand_too_small"))
            large = config.max_hand_size_px
            if image_diagonal > 0:
                large = min(large, config.max_hand_size_fraction * image_diagonal)
            failed.append((sizes > large, "hand_too_large"))
        if self._needs_bones:
            delta = keypoints[:, _BONE_CHILD] - keypoints[:, _BONE_PARENT]
            lengths = np.hypot(delta[..., 0], delta[..., 1])
            bone_valid = None  # every bone measurable: nothing to mask
            if not all_set(valid):
                bone_valid = valid[:, _BONE_CHILD] & valid[:, _BONE_PARENT]
                lengths = np.where(bone_valid, lengths, 0.0)
        if "bone_length" in rules:
            limit = config.max_bone_length_px
            if image_diagonal > 0:
                limit = min(limit, config.max_bone_length_fraction * image_diagonal)
            failed.append((lengths.max(axis=1) > limit, "bone_length"))
        if self._needs_palm:
            palm = palm_sizes(keypoints, valid, lengths, bone_valid)
        if "bone_ratio" in rules:
            failed.append((self._bone_ratio_too_large(lengths, palm), "bone_ratio"))
        if "joint_angle" in rules:
            failed.append((backward_bend(keypoints, valid, palm) > self._max_backward_rad, "joint_angle"))
        reasons = np.full(len(valid), _OK, np.int64)
        if not failed:
            return reasons
        table = np.array([mask for mask, _ in failed])  # (rules, hands)
        if np.count_nonzero(table):  # each failing hand gets the first rule it fails
            failing = table.any(axis=0)
            codes = np.array([_CODE[reason] for _, reason in failed])
            reasons[failing] = codes[table.argmax(axis=0)[failing]]
        return reasons

    def _bone_ratio_too_large(self, lengths: np.ndarray, palm: np.ndarray) -> np.ndarray:
        """Hands with a bone longer than its anatomical maximum relative to the palm size."""
        known = palm > 0
        if all_set(known):
            return (lengths / palm[:, None] > self._ratio_limits).any(axis=1)
        result = np.zeros(len(lengths), bool)
        if any_set(known):
            ratios = lengths[known] / palm[known, None]
            result[known] = (ratios > self._ratio_limits).any(axis=1)
        return result

    def _check_duplicates_and_count(self, hands: FrameHands, keypoints: np.ndarray, valid: np.ndarray,
                                    boxes: np.ndarray, sizes: np.ndarray, reasons: np.ndarray) -> None:
        """Suppress duplicate detections, then keep the ``max_hands`` best survivors."""
        alive = np.flatnonzero(reasons == _OK)
        if alive.size == 0:
            return
        over_limit = "max_hands" in self._rules and alive.size > self.config.max_hands
        # The usual two hands: the duplicate test is symmetric, so the ranking is needed only to
        # pick which of a duplicate pair goes.
        if (alive.size == 2 and not over_limit and "duplicate" in self._rules
                and not self._same_hand(keypoints, valid, boxes, sizes, int(alive[0]), int(alive[1]))):
            return
        if alive.size > 1:
            quality = self._quality(hands, valid)[alive]
            alive = alive[np.argsort(-quality, kind="stable")]
        if "duplicate" in self._rules and alive.size > 1:
            alive = self._suppress_duplicates(alive, keypoints, valid, boxes, sizes, reasons)
        if "max_hands" in self._rules and alive.size > self.config.max_hands:
            reasons[alive[self.config.max_hands:]] = _CODE["max_hands"]

    @staticmethod
    def _quality(hands: FrameHands, valid: np.ndarray) -> np.ndarray:
        """Ranking score: detection score times the mean score of the valid keypoints."""
        scores = np.where(valid, clean_scores(hands.keypoint_scores), 0.0)
        mean_score = scores.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        return clean_scores(hands.detection_scores) * mean_score

    def _suppress_duplicates(self, ranked: np.ndarray, keypoints: np.ndarray, valid: np.ndarray,
                             boxes: np.ndarray, sizes: np.ndarray, reasons: np.ndarray) -> np.ndarray:
        """Greedy suppression over hands ranked best first; returns the survivors, ranked."""
        if len(ranked) == 2:  # the common case: one pair, without the pairwise matrices
            best, other = int(ranked[0]), int(ranked[1])
            if self._same_hand(keypoints, valid, boxes, sizes, best, other):
                reasons[other] = _CODE["duplicate"]
                return ranked[:1]
            return ranked
        boxes = boxes[ranked]
        iou = box_iou(boxes, boxes)
        size = np.maximum(sizes[ranked], 1e-6)
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

    def _same_hand(self, keypoints: np.ndarray, valid: np.ndarray, boxes: np.ndarray, sizes: np.ndarray,
                   a: int, b: int) -> bool:
        """Whether hands ``a`` and ``b`` are one hand: boxes overlapping, or keypoints close (symmetric).

        The pairwise test of :meth:`_suppress_duplicates` for one pair, on Python floats (the same
        IEEE operations, so the same result as the matrix form).
        """
        if pair_iou(boxes[a].tolist(), boxes[b].tolist()) > self.config.duplicate_iou:
            return True
        both = valid[a] & valid[b]
        shared = int(np.count_nonzero(both))
        if shared < 3:
            return False
        difference = keypoints[a] - keypoints[b]
        distance = np.hypot(difference[:, 0], difference[:, 1])
        if shared < len(both):  # else nothing to mask: the same values, so the same sum
            distance[~both] = 0.0
            distance = distance * both
        mean_distance = float(distance.sum()) / shared
        size_a, size_b = float(sizes[a]), float(sizes[b])
        relative = mean_distance / min(max(size_a, 1e-6), max(size_b, 1e-6))
        return relative < self.config.duplicate_keypoint_distance


_BONE_PARENT, _BONE_CHILD = BONES[:, 0].copy(), BONES[:, 1].copy()


def _no_hands(frame: FrameHands) -> FrameHands:
    """The frame with zero hands (the "rejected" part when none is), sharing empty arrays."""
    return frame.derive(**_EMPTY_HANDS)


# Zero-length per-hand arrays of every FrameHands field: holding no data, they can be shared.
_EMPTY_HANDS: dict[str, np.ndarray] = {
    name: array for name, array in FrameHands.empty().arrays().items()}
