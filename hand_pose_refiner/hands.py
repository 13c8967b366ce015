"""Vectorised containers for hand poses: one frame's hands, and one hand's track over time.

Arrays, not lists of objects, so that filters and metrics work on all hands or all frames
at once. Coordinates are image pixels (x right, y down, origin at the top-left image corner);
a keypoint that was never predicted is NaN with state :attr:`KeypointState.MISSING`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.arrays import all_set
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, Handedness, KeypointState

FloatArray = npt.NDArray[np.float32]

# Per-hand arrays of FrameHands (and per-frame arrays of HandTrack): name -> (dtype, trailing shape).
_HAND_ARRAYS: dict[str, tuple[type[np.generic], tuple[int, ...]]] = {
    "keypoints": (np.float32, (NUM_KEYPOINTS, 2)),
    "keypoint_scores": (np.float32, (NUM_KEYPOINTS,)),
    "keypoint_states": (np.uint8, (NUM_KEYPOINTS,)),
    "boxes": (np.float32, (4,)),
    "detection_scores": (np.float32, ()),
    "handedness": (np.uint8, ()),
    "handedness_scores": (np.float32, ()),
    "track_ids": (np.int64, ()),
}

_DEFAULT_FILL: dict[str, float] = {
    "keypoints": np.nan,
    "keypoint_scores": 0.0,
    "keypoint_states": int(KeypointState.OBSERVED),
    "boxes": np.nan,
    "detection_scores": 0.0,
    "handedness": int(Handedness.UNKNOWN),
    "handedness_scores": 0.0,
    "track_ids": -1,
}


def _coerce(name: str, value: Any, length: int | None) -> np.ndarray:
    """Cast one array to its dtype and check its shape, so every container is well-formed."""
    dtype, trailing = _HAND_ARRAYS[name]
    array = np.ascontiguousarray(value, dtype=dtype)
    if array.ndim != 1 + len(trailing) or array.shape[1:] != trailing:
        raise ValueError(f"{name} must have shape (n, {', '.join(map(str, trailing))}) "
                         f"but has shape {array.shape}".replace(", )", ")"))
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} rows, expected {length}")
    return array


def boxes_from_keypoints(keypoints: npt.ArrayLike, valid: npt.ArrayLike | None = None,
                         empty: float = np.nan, *, finite: bool = False) -> FloatArray:
    """Tight ``(x_min, y_min, x_max, y_max)`` boxes around each hand's keypoints, ``(n, 4)``.

    Only keypoints that are finite (and ``valid``, when a ``(n, 21)`` mask is given) count; a hand
    without any gets ``empty`` (NaN by default; the filters use 0, a box of size zero).
    ``finite``: the caller knows every ``valid`` keypoint is finite (the filters' ``(n, 21, 2)``
    arrays), so the check is skipped: the same boxes with fewer numpy calls.
    """
    if finite and valid is not None:
        return _valid_boxes(np.asarray(keypoints), np.asarray(valid, bool), empty)
    points = np.asarray(keypoints)
    points = points.reshape(-1, NUM_KEYPOINTS, 2)
    usable = np.isfinite(points).all(axis=-1)
    if valid is not None:
        usable &= np.asarray(valid, bool).reshape(usable.shape)
    mask = usable[..., None]
    low = np.where(mask, points, np.inf).min(axis=1)
    high = np.where(mask, points, -np.inf).max(axis=1)
    boxes = np.concatenate([low, high], axis=1)
    boxes[~usable.any(axis=1)] = empty
    return boxes.astype(points.dtype if points.dtype.kind == "f" else np.float32, copy=False)


def _valid_boxes(keypoints: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_],
                 empty: float) -> FloatArray:
    if all_set(valid):
        return np.concatenate([keypoints.min(axis=1), keypoints.max(axis=1)], axis=1)
    mask = valid[..., None]
    boxes = np.concatenate([np.where(mask, keypoints, np.inf).min(axis=1),
                            np.where(mask, keypoints, -np.inf).max(axis=1)], axis=1)
    boxes[~valid.any(axis=1)] = empty
    return boxes


def box_diagonal(keypoints: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> float:
    """Diagonal of the box around one hand's finite (and ``valid``) keypoints, 0 without any."""
    mask = None if valid is None else np.asarray(valid)[None]
    box = boxes_from_keypoints(np.asarray(keypoints)[None], mask, empty=0.0)[0]
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise intersection over union of ``(n, 4)`` and ``(m, 4)`` xyxy boxes, ``(n, m)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0.0, None).prod(axis=-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pair_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes: :func:`box_iou` for one pair, on Python floats
    (the same IEEE operations, so the same value, without numpy's overhead)."""
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


@dataclass(eq=False)
class FrameHands:
    """All hands of one image: ``n`` hands as parallel arrays.

    Attributes:
        stamp_ns: image time stamp, integer nanoseconds (ROS time of the image header).
        image_width, image_height: image size in pixels.
        frame_id: optical frame of the camera that took the image.
        model_name: backend and checkpoint that produced the keypoints.
        keypoints: ``(n, 21, 2)`` float32 pixel coordinates, NaN where missing.
        keypoint_scores: ``(n, 21)`` float32 model confidence, 0..1.
        keypoint_states: ``(n, 21)`` uint8 :class:`KeypointState` values.
        boxes: ``(n, 4)`` float32 ``x_min, y_min, x_max, y_max`` in pixels.
        detection_scores: ``(n,)`` float32 hand detection score, 0..1.
        handedness: ``(n,)`` uint8 :class:`Handedness` values.
        handedness_scores: ``(n,)`` float32 probability of ``handedness``, 0..1.
        track_ids: ``(n,)`` int64 tracker ids, -1 when untracked.
    """

    stamp_ns: int
    image_width: int
    image_height: int
    keypoints: FloatArray
    keypoint_scores: FloatArray = field(default=None)  # type: ignore[arg-type]
    keypoint_states: npt.NDArray[np.uint8] = field(default=None)  # type: ignore[arg-type]
    boxes: FloatArray = field(default=None)  # type: ignore[arg-type]
    detection_scores: FloatArray = field(default=None)  # type: ignore[arg-type]
    handedness: npt.NDArray[np.uint8] = field(default=None)  # type: ignore[arg-type]
    handedness_scores: FloatArray = field(default=None)  # type: ignore[arg-type]
    track_ids: npt.NDArray[np.int64] = field(default=None)  # type: ignore[arg-type]
    frame_id: str = ""
    model_name: str = ""

    def __post_init__(self) -> None:
        self.keypoints = _coerce("keypoints", self.keypoints, None)
        count = self.keypoints.shape[0]
        for name in _HAND_ARRAYS:
            if name == "keypoints":
                continue
            value = getattr(self, name)
            if value is None:
                if name == "boxes":
                    value = boxes_from_keypoints(self.keypoints).astype(np.float32)
                else:
                    dtype, trailing = _HAND_ARRAYS[name]
                    value = np.full((count, *trailing), _DEFAULT_FILL[name], dtype=dtype)
            setattr(self, name, _coerce(name, value, count))
        self.stamp_ns = int(self.stamp_ns)
        self.image_width = int(self.image_width)
        self.image_height = int(self.image_height)
        if self.image_width < 0 or self.image_height < 0:
            raise ValueError(f"image size must be >= 0, got {self.image_width}x{self.image_height}")

    @classmethod
    def empty(cls, stamp_ns: int = 0, image_width: int = 0, image_height: int = 0,
              frame_id: str = "", model_name: str = "") -> FrameHands:
        """A frame in which no hand was seen."""
        return cls(stamp_ns, image_width, image_height,
                   np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                   frame_id=frame_id, model_name=model_name)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def stamp(self) -> float:
        """Stamp in seconds (float; use ``stamp_ns`` where exactness matters)."""
        return self.stamp_ns * 1e-9

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-hand arrays by name."""
        return {name: getattr(self, name) for name in _HAND_ARRAYS}

    def select(self, index: npt.ArrayLike) -> FrameHands:
        """The hands picked by a boolean mask or an index array, as a new frame (copies)."""
        picked = np.asarray(index)
        if picked.dtype != bool:
            picked = picked.astype(np.intp).reshape(-1)
        return self.derive(**{name: array[picked] for name, array in self.arrays().items()})

    def derive(self, **arrays: np.ndarray) -> FrameHands:
        """A copy with some per-hand arrays replaced, *without* validation.

        For the filters' hot path (thousands of frames per second), where the arrays come from
        this frame's own, already validated ones with the right dtypes and shapes. Anything else
        goes through :meth:`with_arrays`.
        """
        derived = object.__new__(type(self))  # a shallow copy; copy.copy takes several times longer
        derived.__dict__.update(self.__dict__)
        derived.__dict__.update(arrays)
        return derived

    def with_arrays(self, **arrays: npt.ArrayLike) -> FrameHands:
        """A copy with some per-hand arrays replaced (validated like the constructor)."""
        unknown = set(arrays) - set(_HAND_ARRAYS)
        if unknown:
            raise TypeError(f"unknown hand arrays: {sorted(unknown)}")
        return replace(self, **arrays)  # type: ignore[arg-type]

    @staticmethod
    def concatenate(frames: Sequence[FrameHands]) -> FrameHands:
        """The hands of several frames of the same image, in one frame (metadata of the first)."""
        if not frames:
            raise ValueError("cannot concatenate zero frames")
        merged = {name: np.concatenate([getattr(f, name) for f in frames]) for name in _HAND_ARRAYS}
        return replace(frames[0], **merged)  # type: ignore[arg-type]

    def equals(self, other: FrameHands, atol: float = 0.0) -> bool:
        """Same metadata and per-hand arrays (NaN equal to NaN; floats within ``atol``)."""
        meta = [f.name for f in fields(self) if f.name not in _HAND_ARRAYS]
        if any(getattr(self, name) != getattr(other, name) for name in meta):
            return False
        for name, array in self.arrays().items():
            theirs = getattr(other, name)
            if array.shape != theirs.shape:
                return False
            if array.dtype.kind == "f":
                if not np.allclose(array, theirs, atol=atol, rtol=0.0, equal_nan=True):
                    return False
            elif not np.array_equal(array, theirs):
                return False
        return True


@dataclass(eq=False)
class Detections:
    """Hands found in one image by a detector.

    Attributes:
        boxes: ``(n, 4)`` ``x_min, y_min, x_max, y_max`` in image pixels (for MediaPipe: the palm).
        scores: ``(n,)`` detection confidence, 0..1, best first.
        keypoints: ``(n, k, 2)`` keypoints the detector gives in image pixels (MediaPipe: 7 palm
            keypoints, which fix the rotation of the hand crop); ``k`` may be 0.
        image_width, image_height: size of the image the detections refer to.
    """

    boxes: FloatArray
    scores: FloatArray
    keypoints: FloatArray
    image_width: int
    image_height: int

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        count = self.boxes.shape[0]
        keypoints = np.asarray(self.keypoints, np.float32)
        self.keypoints = keypoints.reshape(count, -1, 2) if keypoints.size else np.zeros((count, 0, 2),
                                                                                          np.float32)
        if self.scores.shape[0] != count:
            raise ValueError(f"{count} boxes but {self.scores.shape[0]} scores")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, index: npt.ArrayLike) -> Detections:
        """The detections picked by a boolean mask or index array (copies)."""
        picked = np.asarray(index)
        return replace(self, boxes=self.boxes[picked].copy(), scores=self.scores[picked].copy(),
                       keypoints=self.keypoints[picked].copy())


@dataclass(eq=False)
class HandTrack:
    """One tracked hand over ``t`` frames, oldest first.

    Same per-hand arrays as :class:`FrameHands`, but the first axis is time; ``stamps_ns`` holds
    each frame's stamp. Recorded frames are not evenly spaced, so algorithms must use the stamps.
    """

    track_id: int
    stamps_ns: npt.NDArray[np.int64]
    keypoints: FloatArray
    keypoint_scores: FloatArray
    keypoint_states: npt.NDArray[np.uint8]
    boxes: FloatArray
    detection_scores: FloatArray
    handedness: npt.NDArray[np.uint8]
    handedness_scores: FloatArray

    def __post_init__(self) -> None:
        self.stamps_ns = np.ascontiguousarray(self.stamps_ns, dtype=np.int64).reshape(-1)
        for name in _HAND_ARRAYS:
            if name != "track_ids":
                setattr(self, name, _coerce(name, getattr(self, name), len(self.stamps_ns)))

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def stamps(self) -> npt.NDArray[np.float64]:
        """Stamps in seconds."""
        return self.stamps_ns.astype(np.float64) * 1e-9

    @classmethod
    def from_frames(cls, track_id: int, frames: Sequence[FrameHands]) -> HandTrack:
        """Collect the hand with ``track_id`` from each frame that has it (at most one per frame)."""
        stamps: list[int] = []
        rows: dict[str, list[np.ndarray]] = {name: [] for name in _HAND_ARRAYS if name != "track_ids"}
        for frame in frames:
            hits = np.flatnonzero(frame.track_ids == track_id)
            if hits.size == 0:
                continue
            if hits.size > 1:
                raise ValueError(f"track {track_id} appears {hits.size} times at stamp {frame.stamp_ns}")
            stamps.append(frame.stamp_ns)
            for name, bucket in rows.items():
                bucket.append(getattr(frame, name)[hits[0]])
        arrays = {}
        for name, bucket in rows.items():
            dtype, trailing = _HAND_ARRAYS[name]
            arrays[name] = np.stack(bucket) if bucket else np.zeros((0, *trailing), dtype)
        return cls(track_id=track_id, stamps_ns=np.asarray(stamps, np.int64), **arrays)

    def frame_hands(self, index: int, image_width: int = 0, image_height: int = 0) -> FrameHands:
        """The hand at time ``index`` as a one-hand frame."""
        arrays = {name: getattr(self, name)[index:index + 1] for name in _HAND_ARRAYS
                  if name != "track_ids"}
        return FrameHands(int(self.stamps_ns[index]), image_width, image_height,
                          track_ids=np.array([self.track_id]), **arrays)
