"""Per-frame reach features: one hand's pose as a fixed-length vector, computed causally.

The vector (:data:`NUM_FEATURES` float32 values) holds the hand's shape in palm sizes around its
palm centre (the grip aperture that tells the part's size), which keypoints were usable, where
the palm is in the image and how big it is, how fast it moves (palm sizes per second of real
stamp time: recorded frames are not evenly spaced) and how far it has moved since its track
began (a hand back at rest after a grasp is not a hand that has not reached yet). Left hands
are mirrored. Torch-free, so that datasets can be prepared without the model.

Grasp size has its own, smaller vector (:class:`SizeFeatures`, :data:`NUM_SIZE_FEATURES` values):
finger-tip apertures in image units and in palm sizes, the palm's size and where it is, each now,
as its maximum over the last :data:`SIZE_WINDOW_S` and as its mean over the last
:data:`SIZE_MEAN_S`. These are *not* normalised per pose: what tells S from M from L in these 2D
poses is how a person's hand at the end of a reach differs from that same person's other reaches
(camera distance, hand size and grip style differ far more between people than between cube
sizes), so the size classifier normalises them by the person's own statistics
(:class:`~hand_pose_refiner.activity.reach_size_classifier.SizeCalibration`). Apertures in
pixels beat apertures in palm sizes there: a 2D palm foreshortens as the hand turns to grasp,
which adds noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_refiner.activity.features import palm_centres, usable_keypoints
from hand_pose_refiner.filters.spatial import palm_sizes
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import BONES, NUM_KEYPOINTS, Handedness, bone_lengths

PHASE_NAMES: tuple[str, ...] = ("idle", "reach", "grasp_move")
IDLE, REACH, GRASP_MOVE = 0, 1, 2
# Finger-tip pairs whose distance is the grip aperture (thumb to index, middle, pinky; index to
# pinky): the clearest sign, before contact, of how big the part is (Jeannerod, 1984).
APERTURE_PAIRS: tuple[tuple[int, int], ...] = ((4, 8), (4, 12), (4, 20), (8, 20))
_TIPS = np.array([4, 8, 12, 16, 20])
NUM_APERTURE = len(APERTURE_PAIRS) + 1
NUM_FEATURES = 2 * NUM_KEYPOINTS + NUM_KEYPOINTS + 10 + NUM_APERTURE
MAX_LOCAL = 4.0  # palm sizes from the palm centre
MAX_SPEED = 20.0  # palm sizes per second
MAX_TRAVEL = 10.0  # palm sizes from where the track began
MAX_DT_S = 0.5
# Finger-tip pairs of the size features: thumb to each finger, index to pinky and to middle.
SIZE_PAIRS: tuple[tuple[int, int], ...] = ((4, 8), (4, 12), (4, 16), (4, 20), (8, 20), (8, 12))
_PALM_PAIRS = np.array([(0, 9), (0, 5), (0, 17), (5, 17)])
_PALM_POINTS = np.array([0, 5, 9, 13, 17])
# per pose: apertures in image heights, the same in palm sizes, palm size, palm centre x and y
NUM_SIZE_QUANTITIES = 2 * len(SIZE_PAIRS) + 3
NUM_SIZE_FEATURES = 3 * NUM_SIZE_QUANTITIES  # now, max over SIZE_WINDOW_S, mean over SIZE_MEAN_S
SIZE_WINDOW_S = 1.0
SIZE_MEAN_S = 0.25


@dataclass
class _TrackState:
    first_centre: np.ndarray | None = None
    last_centre: np.ndarray | None = None
    last_stamp_ns: int | None = None
    palm_size: float = 0.0
    max_travel: float = 0.0


class ReachFeatures:
    """Per-frame feature vectors (``NUM_FEATURES`` float32) of one hand, computed causally.

    One instance per track: it remembers the previous palm centre and stamp (for the speed) and
    the first centre (for the distance travelled). The same code makes the training features
    offline and the live features online, so both see exactly the same numbers.
    """

    def __init__(self) -> None:
        self._state = _TrackState()
        self.size = SizeFeatures()
        #: the size features of the last pose pushed (:class:`SizeFeatures`)
        self.size_features = np.zeros(NUM_SIZE_FEATURES, np.float32)

    def push(
        self,
        stamp_ns: int,
        keypoints: np.ndarray,
        valid: np.ndarray,
        image_size: tuple[int, int],
        mirror: bool = False,
    ) -> np.ndarray:
        """Features of one pose (``keypoints`` ``(21, 2)`` px, ``valid`` ``(21,)``); zeros if unusable."""
        state = self._state
        features = np.zeros(NUM_FEATURES, np.float32)
        dt = 0.0 if state.last_stamp_ns is None else (stamp_ns - state.last_stamp_ns) * 1e-9
        tail = 3 * NUM_KEYPOINTS
        features[tail + 9] = min(max(dt, 0.0), MAX_DT_S) / MAX_DT_S
        state.last_stamp_ns = stamp_ns
        self.size_features = self.size.push(stamp_ns, keypoints, valid, image_size, mirror)
        points = keypoints[None].astype(np.float64)
        mask = valid[None] & np.isfinite(points).all(axis=-1)
        centre = palm_centres(points, mask)[0]
        size = _palm_size(points, mask)
        if size > 0:
            # A palm that shrinks for one frame (foreshortened) should not rescale the hand.
            state.palm_size = size if state.palm_size == 0 else 0.8 * state.palm_size + 0.2 * size
        if not np.isfinite(centre).all() or state.palm_size <= 0:
            return features
        scale = state.palm_size
        sign = -1.0 if mirror else 1.0
        local = np.clip((points[0] - centre) / scale, -MAX_LOCAL, MAX_LOCAL) / MAX_LOCAL
        local[:, 0] *= sign
        features[: 2 * NUM_KEYPOINTS] = np.where(mask[0][:, None], local, 0.0).ravel()
        features[2 * NUM_KEYPOINTS : 3 * NUM_KEYPOINTS] = mask[0]
        width, height = image_size
        position = np.array([2.0 * centre[0] / max(width, 1) - 1.0, 2.0 * centre[1] / max(height, 1) - 1.0])
        position[0] *= sign
        features[tail : tail + 2] = position
        features[tail + 2] = scale / max(height, 1) * 4.0
        if state.first_centre is None:
            state.first_centre = centre
        if state.last_centre is not None and dt > 0:
            speed = np.clip((centre - state.last_centre) / (dt * scale), -MAX_SPEED, MAX_SPEED)
            features[tail + 3 : tail + 5] = speed / MAX_SPEED * np.array([sign, 1.0])
            features[tail + 5] = float(np.hypot(*speed)) / MAX_SPEED
        travel = np.clip((centre - state.first_centre) / scale, -MAX_TRAVEL, MAX_TRAVEL) / MAX_TRAVEL
        features[tail + 6 : tail + 8] = travel * np.array([sign, 1.0])
        state.max_travel = max(state.max_travel, float(np.hypot(*travel)))
        features[tail + 8] = state.max_travel
        features[tail + 10 :] = aperture_features(local * MAX_LOCAL, mask[0])
        state.last_centre = centre
        return features


def _palm_size(points: np.ndarray, mask: np.ndarray) -> float:
    lengths = bone_lengths(points)
    bone_valid = mask[:, BONES[:, 0]] & mask[:, BONES[:, 1]]
    size = palm_sizes(
        np.where(mask[..., None], points, 0.0), mask, np.where(bone_valid, lengths, np.nan), bone_valid
    )[0]
    return float(size) if np.isfinite(size) else 0.0


def frame_hand_features(frame: FrameHands, hand: int, features: ReachFeatures) -> np.ndarray:
    """Features of hand ``hand`` of a filtered frame (usable keypoints only; left hands mirrored)."""
    valid = usable_keypoints(frame.keypoints[hand : hand + 1], frame.keypoint_states[hand : hand + 1])[0]
    mirror = int(frame.handedness[hand]) == int(Handedness.LEFT)
    return features.push(
        frame.stamp_ns, frame.keypoints[hand], valid, (frame.image_width, frame.image_height), mirror
    )


def aperture_features(local: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Grip aperture distances and mean finger-tip distance from the palm centre, in palm sizes
    divided by :data:`MAX_LOCAL` (0 where a point is missing); ``local`` ``(21, 2)`` palm sizes."""
    out = np.zeros(NUM_APERTURE, np.float32)
    for k, (a, b) in enumerate(APERTURE_PAIRS):
        if valid[a] and valid[b]:
            out[k] = np.hypot(*(local[a] - local[b])) / MAX_LOCAL
    tips = valid[_TIPS]
    if tips.any():
        out[-1] = np.hypot(local[_TIPS[tips], 0], local[_TIPS[tips], 1]).mean() / MAX_LOCAL
    return out


class SizeFeatures:
    """Grasp-size features of one track (``NUM_SIZE_FEATURES`` float32), computed causally.

    Per pose, :data:`NUM_SIZE_QUANTITIES` raw measures (finger-tip apertures of
    :data:`SIZE_PAIRS` in image heights and in palm sizes, palm size in image heights, palm
    centre in image heights); a measure that cannot be computed (a point missing) keeps its
    previous value. The vector is the measures now, their maximum over the last
    :data:`SIZE_WINDOW_S` (the peak grip aperture, which scales with the object: Jeannerod, 1984)
    and their mean over the last :data:`SIZE_MEAN_S` (less jitter than one pose).
    """

    def __init__(self) -> None:
        self._stamps: list[int] = []
        self._values: list[np.ndarray] = []
        self._last = np.zeros(NUM_SIZE_QUANTITIES)

    def push(
        self,
        stamp_ns: int,
        keypoints: np.ndarray,
        valid: np.ndarray,
        image_size: tuple[int, int],
        mirror: bool = False,
    ) -> np.ndarray:
        values = size_quantities(keypoints, valid, image_size, mirror)
        values = np.where(np.isfinite(values), values, self._last)
        self._last = values
        self._stamps.append(stamp_ns)
        self._values.append(values)
        start = 0
        while self._stamps[start] < stamp_ns - SIZE_WINDOW_S * 1e9:
            start += 1
        del self._stamps[:start], self._values[:start]
        recent = np.asarray(self._values)
        mean_from = int(np.searchsorted(np.asarray(self._stamps), stamp_ns - SIZE_MEAN_S * 1e9))
        summary = [values, recent.max(axis=0), recent[mean_from:].mean(axis=0)]
        return np.concatenate(summary).astype(np.float32)


def size_quantities(
    keypoints: np.ndarray, valid: np.ndarray, image_size: tuple[int, int], mirror: bool = False
) -> np.ndarray:
    """The :data:`NUM_SIZE_QUANTITIES` raw size measures of one pose (NaN where not computable)."""
    width, height = image_size
    points = np.where(valid[:, None], keypoints.astype(np.float64), np.nan) / max(height, 1)
    if mirror:
        points[:, 0] = width / max(height, 1) - points[:, 0]
    pairs = np.array(SIZE_PAIRS)
    apertures = np.hypot(*(points[pairs[:, 0]] - points[pairs[:, 1]]).T)
    palm_lengths = np.hypot(*(points[_PALM_PAIRS[:, 0]] - points[_PALM_PAIRS[:, 1]]).T)
    palm = np.nanmedian(palm_lengths) if np.isfinite(palm_lengths).any() else np.nan
    palm_points = points[_PALM_POINTS]
    known = np.isfinite(palm_points).all(axis=1)
    centre = palm_points[known].mean(axis=0) if known.any() else np.full(2, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.concatenate([apertures, apertures / palm, [palm], centre])
