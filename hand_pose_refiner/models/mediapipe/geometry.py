"""Image <-> network-input geometry of MediaPipe Hands, in pixels.

A hand region of interest (ROI) is a rotated square: centre ``(cx, cy)``, side ``size`` and
``rotation`` (radians, image y down; positive turns the hand's up-vector clockwise into the
image), stored as rows ``(cx, cy, size, rotation)``. The formulas follow MediaPipe's calculators
(ImageToTensor, DetectionsToRects with the wrist->middle-MCP rotation, RectTransformation with
square_long, HandLandmarksToRect, LandmarkProjection) so that crops land on the same pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

# Palm keypoints of the detector: wrist, index/middle/ring/pinky MCP, thumb CMC, thumb MCP.
PALM_KEYPOINT_TO_HAND: tuple[int, ...] = (0, 5, 9, 13, 17, 1, 2)
PALM_ROI_SCALE = 2.6
PALM_ROI_SHIFT_Y = -0.5
LANDMARK_ROI_SCALE = 2.0
# Keypoints MediaPipe's landmarks-to-ROI step uses: wrist, thumb CMC to IP, and the MCP and PIP of
# each finger (hand_landmark_landmarks_to_roi.pbtxt).
TRACKING_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
LANDMARK_ROI_SHIFT_Y = -0.1


def normalize_radians(angle: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Angle wrapped to [-pi, pi)."""
    angle = np.asarray(angle, np.float64)
    return angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))


def rotation_from(start: npt.ArrayLike, end: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rotation that turns the ``start -> end`` vector (pixels) to point straight up."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    return normalize_radians(np.pi / 2 - np.arctan2(-(end[..., 1] - start[..., 1]),
                                                    end[..., 0] - start[..., 0]))


def crop_matrix(roi: npt.ArrayLike, out_size: int) -> npt.NDArray[np.float64]:
    """3x3 matrix mapping image pixels to crop pixels (0..out_size) of a rotated square ROI."""
    cx, cy, size, rotation = (float(v) for v in np.asarray(roi, np.float64).ravel())
    cos, sin = math.cos(rotation), math.sin(rotation)
    scale = out_size / size
    # crop = scale * R^T (p - c) + out_size / 2
    return np.array([
        [cos * scale, sin * scale, out_size / 2 - scale * (cos * cx + sin * cy)],
        [-sin * scale, cos * scale, out_size / 2 - scale * (-sin * cx + cos * cy)],
        [0.0, 0.0, 1.0],
    ])


def crop(image: npt.NDArray[np.uint8], roi: npt.ArrayLike, out_size: int,
         border: int = cv2.BORDER_REPLICATE) -> npt.NDArray[np.uint8]:
    """The rotated ROI resampled to ``out_size`` square (bilinear, as MediaPipe's OpenCV path)."""
    return np.asarray(cv2.warpPerspective(image, crop_matrix(roi, out_size), (out_size, out_size),
                                          flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0), np.uint8)


def letterbox_roi(width: int, height: int) -> FloatArray:
    """The whole image as an unrotated square ROI (the long side; the rest is zero padding)."""
    return np.array([width / 2, height / 2, max(width, height), 0.0], np.float32)


def crop_to_image(points: npt.ArrayLike, rois: npt.ArrayLike, out_size: int) -> FloatArray:
    """Crop pixel coordinates ``(n, k, 2)`` of ``n`` ROIs back to image pixels."""
    points = np.asarray(points, np.float64)
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    cos, sin = np.cos(rois[:, 3])[:, None], np.sin(rois[:, 3])[:, None]
    local = (points / out_size - 0.5) * rois[:, None, 2:3]
    x = cos * local[..., 0] - sin * local[..., 1] + rois[:, 0:1]
    y = sin * local[..., 0] + cos * local[..., 1] + rois[:, 1:2]
    return np.stack([x, y], axis=-1).astype(np.float32)


def image_to_crop(points: npt.ArrayLike, rois: npt.ArrayLike, out_size: int) -> FloatArray:
    """Image pixel coordinates ``(n, k, 2)`` into the crops of ``n`` ROIs (inverse of the above)."""
    points = np.asarray(points, np.float64)
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    cos, sin = np.cos(rois[:, 3])[:, None], np.sin(rois[:, 3])[:, None]
    dx, dy = points[..., 0] - rois[:, 0:1], points[..., 1] - rois[:, 1:2]
    local = np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], axis=-1)
    return ((local / rois[:, None, 2:3] + 0.5) * out_size).astype(np.float32)


def transform_rect(cx: npt.NDArray[np.float64], cy: npt.NDArray[np.float64],
                   width: npt.NDArray[np.float64], height: npt.NDArray[np.float64],
                   rotation: npt.NDArray[np.float64], scale: float, shift_y: float) -> FloatArray:
    """MediaPipe's RectTransformation (pixels): shift along the rotated up-axis, square the long
    side, scale. Returns ROI rows ``(cx, cy, size, rotation)``."""
    cx = cx - height * shift_y * np.sin(rotation)
    cy = cy + height * shift_y * np.cos(rotation)
    size = np.maximum(width, height) * scale
    return np.stack([cx, cy, size, rotation], axis=-1).astype(np.float32)


def rois_from_palms(boxes: npt.ArrayLike, palm_keypoints: npt.ArrayLike) -> FloatArray:
    """Hand ROIs from palm detections in image pixels (MediaPipe's palm-to-hand-ROI graph).

    ``boxes`` ``(n, 4)`` as ``x_min, y_min, x_max, y_max``; ``palm_keypoints`` ``(n, 7, 2)``.
    The box is rotated by the wrist -> middle-finger-MCP direction, shifted half a box towards
    the fingers and enlarged 2.6 times, so that the whole hand fits in the crop.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keypoints = np.asarray(palm_keypoints, np.float64).reshape(-1, 7, 2)
    rotation = rotation_from(keypoints[:, 0], keypoints[:, 2])
    return transform_rect((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                          boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], rotation,
                          PALM_ROI_SCALE, PALM_ROI_SHIFT_Y)


def rois_from_landmarks(keypoints: npt.ArrayLike, scale: float = LANDMARK_ROI_SCALE,
                        shift_y: float = LANDMARK_ROI_SHIFT_Y) -> FloatArray:
    """Hand ROIs from 21 keypoints ``(n, 21, 2)`` in pixels (MediaPipe's tracking ROI).

    Rotation from the wrist to the mean of the index, middle and ring finger bases; the rotated
    bounding box of the finite keypoints, shifted and enlarged as MediaPipe does between frames.
    """
    points = np.asarray(keypoints, np.float64).reshape(-1, 21, 2)
    rois = np.zeros((points.shape[0], 4), np.float32)
    for i, hand in enumerate(points):
        finite = np.asarray(np.isfinite(hand).all(axis=1))
        # MediaPipe's HandLandmarksToRect: rotation from the wrist to the middle MCP averaged with
        # the mean of the index and ring MCPs; the box of the palm and proximal joints only
        # (fingertips would make the next crop too large and the hand drift in it).
        if finite[[0, 5, 9, 13]].all():
            target = ((hand[5] + hand[13]) / 2 + hand[9]) / 2
            rotation = float(rotation_from(hand[0], target))
        else:
            rotation = 0.0
        partial = np.zeros(21, bool)
        partial[list(TRACKING_LANDMARKS)] = True
        pts = hand[finite & partial] if (finite & partial).any() else hand[finite]
        centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
        cos, sin = math.cos(-rotation), math.sin(-rotation)
        local = (pts - centre) @ np.array([[cos, sin], [-sin, cos]])
        lo, hi = local.min(axis=0), local.max(axis=0)
        mid = (lo + hi) / 2
        cos, sin = math.cos(rotation), math.sin(rotation)
        cx = centre[0] + cos * mid[0] - sin * mid[1]
        cy = centre[1] + sin * mid[0] + cos * mid[1]
        width, height = hi - lo
        rois[i] = transform_rect(np.array(cx), np.array(cy), np.array(width), np.array(height),
                                 np.array(rotation), scale, shift_y)
    return rois


def roi_corners(rois: npt.ArrayLike) -> FloatArray:
    """The four corners ``(n, 4, 2)`` of each ROI in image pixels."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    return crop_to_image(np.broadcast_to(unit, (rois.shape[0], 4, 2)), rois, 1)


def search_rois(width: int, height: int, sizes: tuple[float, ...], rotations: int) -> FloatArray:
    """A grid of crop ROIs over the whole image, for hands the palm detector does not find.

    ``sizes`` are crop sides as fractions of the image height; at each size the crops overlap by
    half a side and cover the image edge to edge; each position is tried at ``rotations`` angles
    evenly around the circle (the landmark network needs the hand roughly upright in its crop).
    """
    rows: list[tuple[float, float, float, float]] = []
    for fraction in sizes:
        side = max(fraction * height, 8.0)
        step = side / 2
        for cy in _grid(height, side, step):
            for cx in _grid(width, side, step):
                rows.extend((cx, cy, side, 2 * math.pi * k / rotations) for k in range(rotations))
    return np.asarray(rows, np.float32).reshape(-1, 4)


def _grid(extent: int, side: float, step: float) -> npt.NDArray[np.float64]:
    """Centres ``step`` apart whose crops of ``side`` reach both ends of ``extent``."""
    if side >= extent:
        return np.array([extent / 2])
    count = math.ceil((extent - side) / step) + 1
    return np.linspace(side / 2, extent - side / 2, count)
