"""Drawing hands on images, without ROS: shared by the overlay node, ``annotate``, replay's overlay
bags and the refinement report.

Each track keeps one colour; a keypoint the temporal filter interpolated is drawn hollow. A hand's
caption is its track id, its handedness (L/R) and, when given, its activity label.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import BONES, INTERPOLATED, OBSERVED, Handedness

_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
_UNTRACKED = (200, 200, 200)
_HANDEDNESS_LETTERS = {int(Handedness.LEFT): "L", int(Handedness.RIGHT): "R"}
CROP_SIZE = 128
# Crops are at least this many source pixels wide, so a hand a few pixels wide is shown in its
# surroundings rather than as a blur of a few enlarged pixels.
_MIN_CROP_SOURCE = 24


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The RGB colour a track is drawn in (grey when untracked)."""
    return _COLOURS[track_id % len(_COLOURS)] if track_id >= 0 else _UNTRACKED


def hand_caption(hands: FrameHands, index: int, activity: str | None = None) -> str:
    """``#<track> <L|R> <activity>``: what is written next to one hand."""
    parts = [f"#{int(hands.track_ids[index])}"]
    letter = _HANDEDNESS_LETTERS.get(int(hands.handedness[index]))
    if letter:
        parts.append(letter)
    if activity:
        parts.append(activity)
    return " ".join(parts)


def _usable(hands: FrameHands, index: int) -> npt.NDArray[np.bool_]:
    """The keypoints worth drawing: observed or interpolated, with finite coordinates."""
    return (hands.keypoint_states[index] <= INTERPOLATED) & np.isfinite(hands.keypoints[index]).all(axis=-1)


def _point(xy: np.ndarray) -> tuple[int, int]:
    x, y = np.round(xy).astype(int)
    return int(x), int(y)


def _draw_text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int],
               scale: int) -> None:
    """Text in ``colour`` with a dark outline, readable on any background."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale
    cv2.putText(canvas, text, origin, font, size, (0, 0, 0), 3 * scale, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, font, size, colour, scale, cv2.LINE_AA)


def _draw_hand(canvas: np.ndarray, hands: FrameHands, index: int, scale: int, caption: str | None,
               line: int = 2, radius: int = 3) -> None:
    """Bones ``line`` * ``scale`` px wide, keypoints of ``radius`` * ``scale`` px, the caption above."""
    colour = track_colour(int(hands.track_ids[index]))
    points, states = hands.keypoints[index], hands.keypoint_states[index]
    usable = _usable(hands, index)
    for parent, child in BONES:
        if usable[parent] and usable[child]:
            cv2.line(canvas, _point(points[parent]), _point(points[child]), colour, line * scale, cv2.LINE_AA)
    for point, state, ok in zip(points, states, usable, strict=True):
        if ok:
            cv2.circle(canvas, _point(point), radius * scale, colour, -1 if state == OBSERVED else scale,
                       cv2.LINE_AA)
    if caption and usable.any():
        x, y = _point(points[usable].min(axis=0))
        _draw_text(canvas, caption, (x, max(y - 6, 12 * scale)), colour, scale)


def draw_hands(rgb: np.ndarray, hands: FrameHands, activities: Mapping[int, str] | None = None) -> np.ndarray:
    """An RGB copy with each hand's bones, keypoints and caption (track id, handedness and the
    activity label ``activities`` gives its track id, if any) drawn."""
    canvas = rgb.copy()
    scale = max(1, round(max(canvas.shape[:2]) / 640))
    activities = activities or {}
    for index in range(len(hands)):
        caption = hand_caption(hands, index, activities.get(int(hands.track_ids[index])))
        _draw_hand(canvas, hands, index, scale, caption)
    return canvas


def _crop_square(hands: FrameHands, index: int, margin: float) -> tuple[float, float, float] | None:
    """Centre x, y and side of the square around one hand (keypoints, else its box), with a
    ``margin`` of the hand's size on every side; None when the hand has no position."""
    usable = _usable(hands, index)
    if usable.any():
        low, high = hands.keypoints[index][usable].min(axis=0), hands.keypoints[index][usable].max(axis=0)
    elif np.isfinite(hands.boxes[index]).all():
        low, high = hands.boxes[index][:2], hands.boxes[index][2:]
    else:
        return None
    side = max(float((high - low).max()) * (1 + 2 * margin), _MIN_CROP_SOURCE)
    centre = (low + high) / 2
    return float(centre[0]), float(centre[1]), side


def hand_crop(rgb: np.ndarray, hands: FrameHands, index: int, size: int = CROP_SIZE,
              margin: float = 0.3) -> np.ndarray | None:
    """A ``size`` x ``size`` RGB close-up of hand ``index`` with its skeleton drawn thin at the
    close-up's scale (so a hand a few pixels wide in the frame can be judged by eye); outside
    the frame is black. None when the hand has neither keypoints nor a box."""
    square = _crop_square(hands, index, margin)
    if square is None:
        return None
    centre_x, centre_y, side = square
    zoom = size / side
    shift = np.array([size / 2 - zoom * centre_x, size / 2 - zoom * centre_y], np.float32)
    matrix = np.array([[zoom, 0, shift[0]], [0, zoom, shift[1]]], np.float32)
    interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)
    one = hands.select(np.array([index]))
    one = one.derive(keypoints=(one.keypoints * np.float32(zoom) + shift).astype(np.float32))
    _draw_hand(crop, one, 0, 1, None, line=1, radius=2)
    return crop
