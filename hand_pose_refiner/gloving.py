"""Thick glovebox gloves painted over bare hands, from each hand's 21 keypoints.

Turns a bare-hand video into a gloved one whose keypoints are known (those of the bare original):
a benchmark of the refinement loop on gloved *video*, where the real gloved footage is stills.

A glove is the union of

* a capsule per finger bone (MCP -> PIP -> DIP -> tip; the thumb from its CMC), thick like a
  glove finger: a radius of ``finger_radius`` hand sizes;
* the palm: the polygon through the wrist, the thumb's CMC and the four finger MCPs, grown by
  ``palm_margin`` hand sizes;
* a cuff: a band that starts at the wrist and runs ``cuff_length`` hand sizes away from the
  fingers, along the forearm (the direction middle MCP -> wrist), widening as a gauntlet does.

The hand size is the wrist -> middle-MCP length (the palm, as
:data:`~hand_pose_refiner.metrics.REFERENCE_BONE`).
The glove's colour is off-white as the gloves of ``../shared/data/hags_gloved_assembly`` (bright
parts about BGR 243/246/248, shaded parts about 171/178/185), shaded by the original image's
luminance under the hand (so folds, the light's direction and motion blur carry over) and, on the
cuff, as a lit tube; its edge is feathered over a few pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.hands import box_iou
from hand_pose_refiner.skeleton import FINGER_KEYPOINTS, NUM_KEYPOINTS, WRIST

INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 5, 9, 17
# Palm length over palm width (index MCP -> pinky MCP) of an open hand seen face-on.
WIDTH_TO_LENGTH = 1.25
# The palm polygon: wrist, thumb CMC, the four finger MCPs (index, middle, ring, pinky).
PALM_POLYGON: tuple[int, ...] = (WRIST, 1, 5, 9, 13, 17)


@dataclass(frozen=True)
class GloveStyle:
    """How a glove looks: sizes in hand sizes (wrist -> middle MCP), colours as BGR 0-255."""

    colour_bgr: tuple[int, int, int] = (236, 241, 246)  # the fully lit glove
    cuff_colour_bgr: tuple[int, int, int] = (226, 232, 238)  # the gauntlet, a shade greyer
    finger_radius: float = 0.34
    palm_margin: float = 0.30
    cuff_length: float = 1.5
    cuff_width: float = 0.6  # half-width at the wrist
    cuff_flare: float = 1.25  # half-width at the far end, relative to the wrist's
    shade_low: float = 0.62  # brightness of the darkest part of the glove
    shade_high: float = 1.0
    feather_px: float = 1.5  # Gaussian sigma of the mask's edge, pixels


def hand_size(keypoints: npt.ArrayLike) -> float:
    """The size of one ``(21, 2)`` hand, pixels: the wrist -> middle-MCP length, or the index ->
    pinky MCP width times :data:`WIDTH_TO_LENGTH` when that is longer (a palm seen edge-on or
    foreshortened); NaN without wrist and middle MCP."""
    points = np.asarray(keypoints, np.float64)
    if points.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"a hand is ({NUM_KEYPOINTS}, 2) keypoints, got {points.shape}")
    length = float(np.hypot(*(points[WRIST] - points[MIDDLE_MCP])))
    width = float(np.hypot(*(points[INDEX_MCP] - points[PINKY_MCP]))) * WIDTH_TO_LENGTH
    return max(length, width) if np.isfinite(width) else length


def _chains() -> list[tuple[int, ...]]:
    """The keypoint chains drawn as capsules: each finger from the wrist side to its tip."""
    return [(1, *FINGER_KEYPOINTS["thumb"][1:]) if name == "thumb" else tuple(points)
            for name, points in FINGER_KEYPOINTS.items()]


def _draw_capsule(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: int) -> None:
    pa = (round(float(a[0])), round(float(a[1])))
    pb = (round(float(b[0])), round(float(b[1])))
    cv2.line(canvas, pa, pb, 255, thickness=max(1, 2 * radius))
    cv2.circle(canvas, pa, radius, 255, -1)
    cv2.circle(canvas, pb, radius, 255, -1)


def glove_mask(keypoints: npt.ArrayLike, shape: tuple[int, int], style: GloveStyle = GloveStyle(),
               cuff: bool = True) -> npt.NDArray[np.uint8]:
    """The glove of one ``(21, 2)`` hand (with its cuff unless ``cuff`` is False) as a 0/255 mask
    of ``shape`` (h, w). Bones with a NaN end are left out; a hand without wrist and middle MCP
    gives an empty mask.
    """
    points = np.asarray(keypoints, np.float64)
    size = hand_size(points)
    mask = np.zeros(shape, np.uint8)
    if not np.isfinite(size) or size < 1.0:
        return mask
    radius = max(1, round(style.finger_radius * size))
    for chain in _chains():
        for start, end in itertools.pairwise(chain):
            if np.isfinite(points[[start, end]]).all():
                _draw_capsule(mask, points[start], points[end], radius)
    palm = points[list(PALM_POLYGON)]
    palm = palm[np.isfinite(palm).all(axis=1)]
    if len(palm) >= 3:
        hull = cv2.convexHull(np.round(palm).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
        cv2.polylines(mask, [hull], True, 255, thickness=max(1, 2 * round(style.palm_margin * size)))
    if cuff:
        mask |= cuff_mask(points, shape, style)
    return mask


@dataclass(frozen=True)
class Cuff:
    """A cuff's axis (``start`` in the palm to ``end`` up the forearm) and its half-widths there."""

    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]
    near: float
    far: float

    @property
    def along(self) -> npt.NDArray[np.float64]:
        axis = self.end - self.start
        return axis / max(float(np.hypot(*axis)), 1e-9)

    @property
    def across(self) -> npt.NDArray[np.float64]:
        return np.array([-self.along[1], self.along[0]])


def cuff_of(keypoints: npt.ArrayLike, style: GloveStyle = GloveStyle()) -> Cuff | None:
    """The cuff of one hand: from a little inside the palm (no seam with the hand) along the forearm,
    i.e. away from the fingers (middle MCP -> wrist); None without wrist and middle MCP."""
    points = np.asarray(keypoints, np.float64)
    size = hand_size(points)
    if not np.isfinite(size) or size < 1.0:
        return None
    wrist = points[WRIST]
    along = wrist - points[MIDDLE_MCP]
    along = along / max(float(np.hypot(*along)), 1e-9)
    near = style.cuff_width * size
    return Cuff(wrist - along * 0.25 * size, wrist + along * style.cuff_length * size, near,
                near * style.cuff_flare)


def cuff_mask(keypoints: npt.ArrayLike, shape: tuple[int, int],
              style: GloveStyle = GloveStyle()) -> npt.NDArray[np.uint8]:
    """The cuff of one hand alone (0/255): a widening band with a rounded far end."""
    mask = np.zeros(shape, np.uint8)
    cuff = cuff_of(keypoints, style)
    if cuff is None:
        return mask
    quad = np.array([cuff.start + cuff.across * cuff.near, cuff.end + cuff.across * cuff.far,
                     cuff.end - cuff.across * cuff.far, cuff.start - cuff.across * cuff.near])
    cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255)
    cv2.circle(mask, (round(float(cuff.end[0])), round(float(cuff.end[1]))), round(cuff.far), 255, -1)
    return mask


def tube_shading(cuff: Cuff, shape: tuple[int, int], style: GloveStyle = GloveStyle()
                 ) -> npt.NDArray[np.float32]:
    """Per-pixel brightness of a cuff as a lit tube: ``shade_high`` along its axis, ``shade_low`` at
    its sides. (A cuff reaches past the arm onto whatever is behind it, so the original luminance
    would shade it as the background.)"""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dx, dy = xs - np.float32(cuff.start[0]), ys - np.float32(cuff.start[1])
    length = max(float(np.hypot(*(cuff.end - cuff.start))), 1.0)
    t = np.clip((dx * cuff.along[0] + dy * cuff.along[1]) / length, 0.0, 1.0)
    half = cuff.near + (cuff.far - cuff.near) * t
    u = np.clip(np.abs(dx * cuff.across[0] + dy * cuff.across[1]) / half, 0.0, 1.0)
    lit = np.sqrt(1.0 - u * u)
    return (style.shade_low + (style.shade_high - style.shade_low) * lit).astype(np.float32)


def shading(bgr: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], style: GloveStyle = GloveStyle()
            ) -> npt.NDArray[np.float32]:
    """Per-pixel brightness of the glove (``shade_low``..``shade_high``) from the original luminance:
    the brightest part under the mask (its 95th percentile) is fully lit."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if not mask.any():
        return np.full(grey.shape, style.shade_high, np.float32)
    bright = max(float(np.percentile(grey[mask], 95)), 1.0)
    relative = np.clip(grey / bright, 0.0, 1.0)
    return (style.shade_low + (style.shade_high - style.shade_low) * relative).astype(np.float32)


def paint_gloves(bgr: npt.NDArray[np.uint8], hands: Sequence[npt.ArrayLike],
                 style: GloveStyle = GloveStyle()) -> npt.NDArray[np.uint8]:
    """``bgr`` (an ``(h, w, 3)`` uint8 image) with every hand in ``hands`` (``(21, 2)`` keypoints,
    pixels) painted as a glove with its cuff. Returns a new image; ``hands`` empty: a copy."""
    image = np.asarray(bgr)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"paint_gloves takes an (h, w, 3) uint8 BGR image, got {image.dtype} {image.shape}")
    shape = image.shape[:2]
    if not len(hands):
        return image.copy()
    hand = np.zeros(shape, np.uint8)
    cuff = np.zeros(shape, np.uint8)
    for keypoints in hands:
        hand |= glove_mask(keypoints, shape, style, cuff=False)
        cuff |= cuff_mask(keypoints, shape, style)
    glove = hand | cuff
    if not glove.any():
        return image.copy()
    alpha = glove.astype(np.float32) / np.float32(255.0)
    if style.feather_px > 0:
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), style.feather_px), np.float32)
    cuff_only = (cuff > 0) & (hand == 0)
    shade: npt.NDArray[np.float32] = shading(image, hand > 0, style)
    if cuff_only.any():
        tubes = [tube_shading(c, shape, style) for c in (cuff_of(k, style) for k in hands) if c is not None]
        shade = np.where(cuff_only, np.max(tubes, axis=0), shade).astype(np.float32)
    colour = np.where(cuff_only[..., None], np.array(style.cuff_colour_bgr, np.float32),
                      np.array(style.colour_bgr, np.float32))
    painted = colour * shade[..., None]
    out = image.astype(np.float32) * (1.0 - alpha[..., None]) + painted * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)



def keypoint_boxes(hands: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(n, 4)`` x_min, y_min, x_max, y_max of the set keypoints of ``(n, 21, 2)`` hands (NaN for a
    hand with none set)."""
    points = np.asarray(hands, np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    if not len(points):
        return np.zeros((0, 4))
    set_ = np.isfinite(points)
    low = np.where(set_, points, np.inf).min(axis=1)
    high = np.where(set_, points, -np.inf).max(axis=1)
    boxes = np.concatenate([low, high], axis=1)
    return np.where(np.isfinite(boxes), boxes, np.nan)  # a hand with no keypoint set: NaN


def finds_reference_hand(found: npt.ArrayLike, reference: npt.ArrayLike, min_iou: float = 0.3) -> bool:
    """Whether any hand of ``found`` is one of the ``reference`` hands (``(n, 21, 2)`` each): their
    keypoint boxes overlap by at least ``min_iou``. A hand found elsewhere (a bare hand the reference
    missed, so left unpainted, or a false hand) does not count."""
    found_boxes, reference_boxes = keypoint_boxes(found), keypoint_boxes(reference)
    if not len(found_boxes) or not len(reference_boxes):
        return False
    return bool((box_iou(found_boxes, reference_boxes) >= min_iou).any())
