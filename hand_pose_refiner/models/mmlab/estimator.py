"""An mmpose top-down pose model (the paper's HRNetV2-w18 by default) behind :class:`PoseEstimator`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models.base import (
    Detections,
    PoseEstimator,
    resolve_device,
    settings_key,
)
from hand_pose_refiner.models.mediapipe.detector import check_rgb
from hand_pose_refiner.models.mmlab.configs import hand_metainfo
from hand_pose_refiner.models.mmlab.model import MMLabModel
from hand_pose_refiner.models.mmlab.runtime import load_network, require_mmlab
from hand_pose_refiner.skeleton import NUM_KEYPOINTS

KIND = "pose"


def inference_pipeline(config: Any) -> list[dict[str, Any]]:
    """The config's test pipeline (mmpose's LoadImage takes arrays as they are)."""
    return [dict(step) for step in (config.get("test_pipeline") or config.test_dataloader.dataset.pipeline)]


class MMLabPoseEstimator(MMLabModel, PoseEstimator):
    """21 hand keypoints from an mmpose top-down model on each detected hand box.

    ``checkpoint`` and ``config`` as for :class:`MMLabHandDetector`. Keypoint scores are the
    heatmap maxima (clipped to 0..1); hands whose mean keypoint score is below ``min_presence``
    are dropped. The keypoint order is this package's (wrist, then each finger base to tip), the
    order of OneHand10K and COCO-WholeBody hands, on which OpenMMLab hand models are trained.
    """

    kind = KIND

    def __init__(self, checkpoint: str | Path | None = None, config: str = "", device: str = "auto",
                 batch_size: int = 8, min_presence: float = 0.0) -> None:
        require_mmlab()
        self.device = resolve_device(device)
        self.config_reference = config
        self.batch_size = batch_size
        self.min_presence = min_presence
        self.load(checkpoint)

    def load(self, path: str | Path | None) -> None:
        from mmpose.datasets.datasets.utils import parse_pose_metainfo

        self.config, self.source, net, self.pipeline = load_network(KIND, self.config_reference, path,
                                                                    inference_pipeline)
        net.dataset_meta = parse_pose_metainfo(hand_metainfo())
        self.net = net.to(self.device).eval()
        self.checkpoint = Path(path) if path else None
        self.name = f"mmlab/{type(net.backbone).__name__}"

    def predict_boxes(self, image: npt.NDArray[np.uint8],
                      boxes: npt.NDArray[np.float32]) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(n, 21, 2)`` in image pixels and their scores ``(n, 21)`` for xyxy boxes."""
        from mmengine.dataset import pseudo_collate

        bgr = np.ascontiguousarray(image[..., ::-1])
        meta = {key: self.net.dataset_meta[key] for key in ("flip_indices", "dataset_name")}
        keypoints, scores = [], []
        for start in range(0, len(boxes), self.batch_size):
            data = [self.pipeline({"img": bgr, "bbox": box[None].astype(np.float32),
                                   "bbox_score": np.ones(1, np.float32), **meta})
                    for box in boxes[start:start + self.batch_size]]
            with torch.inference_mode():
                samples = self.net.test_step(pseudo_collate(data))
            for sample in samples:
                keypoints.append(np.asarray(sample.pred_instances.keypoints[0], np.float32))
                scores.append(np.asarray(sample.pred_instances.keypoint_scores[0], np.float32))
        if not keypoints:
            return np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32)
        return np.stack(keypoints), np.clip(np.stack(scores), 0.0, 1.0)

    def prediction_key(self) -> list[str]:
        return settings_key({"min_presence": self.min_presence})

    def estimate(self, images: Sequence[npt.NDArray[np.uint8]], detections: Sequence[Detections],
                 stamps_ns: Sequence[int] | None = None) -> list[FrameHands]:
        if len(images) != len(detections):
            raise ModelError(f"{len(images)} images but {len(detections)} detection lists")
        stamps = list(stamps_ns) if stamps_ns is not None else [0] * len(images)
        frames = []
        for index, (image, found, stamp) in enumerate(zip(images, detections, stamps, strict=True)):
            check_rgb(image, index)
            height, width = image.shape[:2]
            keypoints, scores = self.predict_boxes(image, found.boxes)
            keep = scores.mean(axis=1) >= self.min_presence if len(scores) else np.zeros(0, bool)
            frames.append(FrameHands(stamp, width, height, keypoints[keep], keypoint_scores=scores[keep],
                                     boxes=found.boxes[keep], detection_scores=found.scores[keep],
                                     model_name=self.name))
        return frames
