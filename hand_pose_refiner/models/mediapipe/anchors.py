"""SSD anchors, box decoding and weighted non-maximum suppression of the palm detector.

The settings are those of MediaPipe's ``palm_detection_cpu`` graph (SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator with the WEIGHTED algorithm), so the
port turns raw network outputs into the same detections as MediaPipe does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.hands import box_iou
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE, NUM_PALM_KEYPOINTS

STRIDES = (8, 16, 16, 16)
SCORE_CLIP = 100.0
MIN_SUPPRESSION_IOU = 0.3


def generate_anchors(input_size: int = INPUT_SIZE,
                     strides: tuple[int, ...] = STRIDES) -> npt.NDArray[np.float32]:
    """Anchor centres ``(N, 2)`` in 0..1 (fixed anchor size 1, so only the centre matters).

    Consecutive layers with the same stride share one grid; each layer adds two anchors per cell
    (aspect ratio 1 and the interpolated scale), as the SsdAnchorsCalculator does.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, 2 * same, axis=0))
    return np.concatenate(centres).astype(np.float32)


def decode_boxes(regressions: torch.Tensor, anchors: torch.Tensor,
                 input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Raw regressions ``(..., N, 18)`` -> boxes and keypoints in 0..1 of the network input.

    Output ``(..., N, 18)``: ``x_min, y_min, x_max, y_max`` then 7 keypoints ``x, y``.
    """
    scaled = regressions / input_size
    centre = scaled[..., 0:2] + anchors
    half = scaled[..., 2:4] / 2
    keypoints = scaled[..., 4:].reshape(*scaled.shape[:-1], NUM_PALM_KEYPOINTS, 2) + anchors[:, None, :]
    return torch.cat([centre - half, centre + half, keypoints.flatten(-2)], dim=-1)


def scores_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid of the clipped logits, as MediaPipe scores anchors."""
    return torch.sigmoid(logits.clamp(-SCORE_CLIP, SCORE_CLIP))


def weighted_nms(detections: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
                 threshold: float = MIN_SUPPRESSION_IOU) -> tuple[npt.NDArray[np.float32],
                                                                  npt.NDArray[np.float32]]:
    """Merge overlapping detections into their score-weighted mean (MediaPipe's WEIGHTED NMS).

    Plain NMS would keep one anchor's box; averaging all anchors of a palm gives steadier boxes,
    and it is what the pre-trained model was tuned with. Returns ``(detections, scores)``, best
    first; each kept detection keeps the score of its best anchor.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept_rows, kept_scores = [], []
    while remaining.size:
        best = remaining[0]
        overlap = box_iou(detections[best, :4], detections[remaining, :4])[0] > threshold
        overlap[0] = True  # a degenerate box (no area) still ends its own group
        group = remaining[overlap]
        weights = scores[group]
        merged = (detections[group] * weights[:, None]).sum(axis=0) / weights.sum()
        kept_rows.append(merged)
        kept_scores.append(scores[best])
        remaining = remaining[~overlap]
    if not kept_rows:
        return np.zeros((0, detections.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.stack(kept_rows).astype(np.float32), np.asarray(kept_scores, np.float32)
