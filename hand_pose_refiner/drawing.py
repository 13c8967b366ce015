"""Drawing hands on images, without ROS: shared by the overlay node and the refinement report."""

from __future__ import annotations

import cv2
import numpy as np

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import BONES, INTERPOLATED, OBSERVED

_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def draw_hands(rgb: np.ndarray, hands: FrameHands) -> np.ndarray:
    """An RGB copy with each hand's bones, keypoints (interpolated hollow) and track id drawn."""
    canvas = rgb.copy()
    scale = max(1, round(max(canvas.shape[:2]) / 640))
    for index in range(len(hands)):
        track_id = int(hands.track_ids[index])
        colour = _COLOURS[track_id % len(_COLOURS)] if track_id >= 0 else (200, 200, 200)
        points, states = hands.keypoints[index], hands.keypoint_states[index]
        usable = (states <= INTERPOLATED) & np.isfinite(points).all(axis=-1)
        for parent, child in BONES:
            if usable[parent] and usable[child]:
                cv2.line(canvas, tuple(np.round(points[parent]).astype(int)),
                         tuple(np.round(points[child]).astype(int)), colour, 2 * scale, cv2.LINE_AA)
        for point, state, ok in zip(points, states, usable, strict=True):
            if ok:
                cv2.circle(canvas, tuple(np.round(point).astype(int)), 3 * scale, colour,
                           -1 if state == OBSERVED else scale, cv2.LINE_AA)
        if usable.any():
            x, y = np.round(points[usable].min(axis=0)).astype(int)
            cv2.putText(canvas, f"#{track_id}", (int(x), max(int(y) - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale, colour, scale, cv2.LINE_AA)
    return canvas
