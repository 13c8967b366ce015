"""Per-frame hand records: FrameHands <-> JSON lines, and many frames <-> one npz array file.

JSON lines are for people and other tools (one frame per line, raw and filtered side by side);
the npz form is the prediction cache, loaded in milliseconds so that re-running the filters is
fast.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import NUM_KEYPOINTS

_ARRAYS = ("keypoints", "keypoint_scores", "keypoint_states", "boxes", "detection_scores", "handedness",
           "handedness_scores", "track_ids")


def _rounded(array: np.ndarray, digits: int) -> list[Any]:
    """A list with NaN as None (JSON has no NaN)."""
    values = np.round(array.astype(np.float64), digits)
    rounded = values.astype(object)
    rounded[~np.isfinite(values)] = None
    return rounded.tolist()


def hands_to_json(hands: FrameHands) -> list[dict[str, Any]]:
    """One dict per hand: keypoints (x, y pairs, pixels), scores, states, box, ids."""
    return [{
        "keypoints": _rounded(hands.keypoints[i], 2),
        "keypoint_scores": _rounded(hands.keypoint_scores[i], 4),
        "keypoint_states": hands.keypoint_states[i].tolist(),
        "box": _rounded(hands.boxes[i], 2),
        "score": round(float(hands.detection_scores[i]), 4),
        "handedness": int(hands.handedness[i]),
        "handedness_score": round(float(hands.handedness_scores[i]), 4),
        "track_id": int(hands.track_ids[i]),
    } for i in range(len(hands))]


def hands_from_json(rows: Sequence[Mapping[str, Any]], stamp_ns: int, width: int, height: int) -> FrameHands:
    """The inverse of :func:`hands_to_json`."""
    if not rows:
        return FrameHands.empty(stamp_ns, width, height)

    def floats(key: str) -> np.ndarray:
        return np.array([[np.nan if v is None else v for v in np.ravel(np.asarray(r[key], object))]
                         for r in rows], np.float64)

    return FrameHands(stamp_ns, width, height, floats("keypoints").reshape(-1, NUM_KEYPOINTS, 2),
                      keypoint_scores=floats("keypoint_scores"),
                      keypoint_states=np.array([r["keypoint_states"] for r in rows], np.uint8),
                      boxes=floats("box"),
                      detection_scores=np.array([r["score"] for r in rows], np.float32),
                      handedness=np.array([r["handedness"] for r in rows], np.uint8),
                      handedness_scores=np.array([r["handedness_score"] for r in rows], np.float32),
                      track_ids=np.array([r["track_id"] for r in rows], np.int64))


def save_frames(path: Path, frames: Sequence[FrameHands]) -> Path:
    """Many frames in one npz file (arrays concatenated, with per-frame counts), atomically."""
    buffer = io.BytesIO()
    merged = {name: np.concatenate([getattr(f, name) for f in frames]) if frames else
              getattr(FrameHands.empty(), name) for name in _ARRAYS}
    meta = np.array([[f.stamp_ns, f.image_width, f.image_height, len(f)] for f in frames], np.int64)
    arrays: dict[str, Any] = {"meta": meta.reshape(-1, 4), **merged,
                              "frame_ids": np.array([f.frame_id for f in frames], dtype=str),
                              "model_names": np.array([f.model_name for f in frames], dtype=str)}
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def load_frames(path: Path) -> list[FrameHands]:
    """The frames written by :func:`save_frames`."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in _ARRAYS}
        meta, frame_ids, model_names = data["meta"], data["frame_ids"], data["model_names"]
    ends = np.cumsum(meta[:, 3])
    starts = ends - meta[:, 3]
    frames = []
    for row, start, end, frame_id, model_name in zip(meta, starts, ends, frame_ids, model_names,
                                                     strict=True):
        frames.append(FrameHands(int(row[0]), int(row[1]), int(row[2]),
                                 frame_id=str(frame_id), model_name=str(model_name),
                                 **{name: array[start:end] for name, array in arrays.items()}))
    return frames
