"""Window features: one hand's poses over a window, normalised so that only its motion counts.

A cobot controller must get the same answer for a hand near the camera and one far away, in the
left or the right half of the image. So every window is normalised *as a whole*:

* translation: coordinates are taken relative to the window's mean palm centre (not per frame,
  so a reach still shows as a displacement);
* scale: divided by the window's median palm size (:func:`~hand_pose_refiner.filters.spatial.palm_sizes`,
  the same measure the spatial filter uses), so the unit is "palm sizes";
* handedness: left hands are mirrored (x negated), so that one set of weights serves both hands.

Channels per keypoint and pose (``IN_CHANNELS``): position in the window, position relative to the
same pose's palm centre, velocity from the *real* time stamps (palm sizes per second; recorded
frames are not evenly spaced), and a validity flag. Keypoints that are not valid (NaN, or neither
observed nor interpolated by the filters) are zero in every channel and 0 in the flag.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.filters.spatial import palm_sizes, valid_keypoints
from hand_pose_refiner.skeleton import BONES, NUM_KEYPOINTS, PALM_KEYPOINTS, bone_lengths

FEATURE_NAMES: tuple[str, ...] = ("x", "y", "local_x", "local_y", "speed_x", "speed_y", "valid")
IN_CHANNELS = len(FEATURE_NAMES)
# Bounds of the normalised values: a filtered pose far outside them is an error, not a motion,
# and unbounded inputs would let one bad pose dominate a window.
MAX_POSITION = 10.0  # palm sizes from the window centre
MAX_SPEED = 20.0  # palm sizes per second

_PALM = np.array(PALM_KEYPOINTS)
_X_CHANNELS = (0, 2, 4)


def usable_keypoints(keypoints: npt.ArrayLike, states: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Keypoints whose coordinates a window may use: finite and observed or interpolated."""
    points = np.asarray(keypoints)
    return valid_keypoints(np.asarray(states, np.uint8)) & np.isfinite(points).all(axis=-1)


def window_scale(keypoints: np.ndarray, valid: np.ndarray) -> float:
    """Median palm size over the poses of a window that have one; 0 when none has."""
    lengths = bone_lengths(keypoints)
    bone_valid = valid[:, BONES[:, 0]] & valid[:, BONES[:, 1]]
    sizes = palm_sizes(np.where(valid[..., None], keypoints, 0.0), valid,
                       np.where(bone_valid, lengths, np.nan), bone_valid)
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return float(np.median(sizes)) if sizes.size else 0.0


def palm_centres(keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per pose, the mean of the valid palm keypoints (else of all valid ones; NaN if none)."""
    palm_valid = valid[:, _PALM]
    palm_count = palm_valid.sum(axis=1)
    palm_sum = np.where(palm_valid[..., None], keypoints[:, _PALM], 0.0).sum(axis=1)
    all_count = valid.sum(axis=1)
    all_sum = np.where(valid[..., None], keypoints, 0.0).sum(axis=1)
    use_palm = palm_count >= 2
    count = np.where(use_palm, palm_count, all_count)
    total = np.where(use_palm[:, None], palm_sum, all_sum)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], np.nan)


def window_features(stamps_ns: npt.ArrayLike, keypoints: npt.ArrayLike, valid: npt.ArrayLike,
                    mirror: bool = False) -> np.ndarray | None:
    """Features ``(IN_CHANNELS, T, 21)`` float32 of one hand's window, or None if unusable.

    ``stamps_ns`` ``(T,)`` strictly increasing, ``keypoints`` ``(T, 21, 2)`` pixels, ``valid``
    ``(T, 21)`` (see :func:`usable_keypoints`); ``mirror`` for left hands. None when no pose of
    the window has a measurable palm (nothing to normalise by).
    """
    stamps = np.asarray(stamps_ns, np.int64)
    points = np.asarray(keypoints, np.float64)
    usable = np.asarray(valid, bool) & np.isfinite(points).all(axis=-1)
    count = stamps.shape[0]
    if points.shape != (count, NUM_KEYPOINTS, 2) or usable.shape != (count, NUM_KEYPOINTS) or count == 0:
        raise ValueError(f"expected stamps (T,), keypoints (T, 21, 2), valid (T, 21); got "
                         f"{stamps.shape}, {points.shape}, {usable.shape}")
    scale = window_scale(points, usable)
    if not scale > 0:
        return None
    centres = palm_centres(points, usable)
    centre = np.nanmean(centres, axis=0)
    if not np.isfinite(centre).all():
        return None
    points = np.where(usable[..., None], points, 0.0)
    position = np.clip((points - centre) / scale, -MAX_POSITION, MAX_POSITION)
    has_centre = np.isfinite(centres).all(axis=1)
    local_valid = usable & has_centre[:, None]
    local = np.clip((points - np.nan_to_num(centres)[:, None, :]) / scale, -MAX_POSITION, MAX_POSITION)
    speed = np.zeros_like(points)
    if count > 1:
        dt = np.diff(stamps).astype(np.float64) * 1e-9
        moving = usable[1:] & usable[:-1] & (dt > 0)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = (points[1:] - points[:-1]) / (np.maximum(dt, 1e-9)[:, None, None] * scale)
        speed[1:] = np.where(moving[..., None], np.clip(raw, -MAX_SPEED, MAX_SPEED), 0.0)
    features = np.empty((IN_CHANNELS, count, NUM_KEYPOINTS), np.float32)
    features[0:2] = np.where(usable[..., None], position, 0.0).transpose(2, 0, 1)
    features[2:4] = np.where(local_valid[..., None], local, 0.0).transpose(2, 0, 1)
    features[4:6] = speed.transpose(2, 0, 1)
    features[6] = usable
    if mirror:
        features[list(_X_CHANNELS)] *= -1.0
    return features
