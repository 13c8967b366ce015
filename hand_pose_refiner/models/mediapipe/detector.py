"""The MediaPipe palm detector behind the :class:`HandDetector` interface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.hands import box_iou
from hand_pose_refiner.models.base import (
    Detections,
    FineTuneConfig,
    FineTuneReport,
    HandDetector,
    resolve_device,
)
from hand_pose_refiner.models.mediapipe.anchors import (
    MIN_SUPPRESSION_IOU,
    decode_boxes,
    generate_anchors,
    scores_from_logits,
    weighted_nms,
)
from hand_pose_refiner.models.mediapipe.geometry import FloatArray, crop, letterbox_roi
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE, KEPT_HEADS, PalmDetectorNet
from hand_pose_refiner.models.mediapipe.weights import NetworkWeights, tensor_names

NETWORK = "palm_detection_full"


def check_rgb(image: npt.NDArray[np.uint8], index: int) -> None:
    """Refuse anything but an ``(h, w, 3)`` uint8 image: the networks were trained on RGB."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ModelError(f"image {index}: expected an (h, w, 3) uint8 RGB array, got "
                         f"{image.dtype} {image.shape}")


def has_kept_heads(path: Path) -> bool:
    """Whether a palm detector weight file holds kept heads next to its own."""
    return any(name.startswith(KEPT_HEADS + ".") for name in tensor_names(path))


def letterbox(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The image scaled into the 192x192 input, aspect kept, zero padding (MediaPipe's way)."""
    height, width = image.shape[:2]
    return crop(image, letterbox_roi(width, height), INPUT_SIZE, border=cv2.BORDER_CONSTANT)


def to_tensor(crops: Sequence[npt.NDArray[np.uint8]], device: torch.device) -> torch.Tensor:
    """uint8 HWC crops -> float NCHW batch in 0..1 on ``device``."""
    batch = torch.from_numpy(np.stack(crops)).to(device)
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


class MediaPipeHandDetector(NetworkWeights, HandDetector):
    """Palm detection (MediaPipe Hands, full model) in native torch.

    ``checkpoint`` is a safetensors file from :meth:`save`; empty or None uses the pre-trained
    weights converted from the MediaPipe wheel.
    """

    network = NETWORK

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto",
                 score_threshold: float = 0.5, batch_size: int = 8, max_hands: int | None = None) -> None:
        self.device = resolve_device(device)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.max_hands = max_hands
        self.net = PalmDetectorNet()
        self.name = "mediapipe/palm_detection_full"
        self.use_weights(checkpoint)
        self.anchors = torch.from_numpy(generate_anchors()).to(self.device)

    @torch.inference_mode()
    def raw_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded boxes/keypoints (0..1 of the input) and scores of all anchors (of the own and
        then of the kept heads, when the net holds some; see :meth:`_merge_kept`)."""
        regressions, logits = self.net.all_outputs(inputs)
        anchors = self.anchors if regressions.shape[1] == len(self.anchors) else self.anchors.repeat(2, 1)
        return decode_boxes(regressions, anchors), scores_from_logits(logits)

    def load(self, path: str | Path) -> None:
        """Load a weight file; one with kept heads (see :meth:`PalmDetectorNet.keep_heads`) brings them."""
        self.net.kept_heads = None
        if has_kept_heads(Path(path)):
            self.net.keep_heads()
        super().load(path)

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            for offset, image in enumerate(chunk):
                check_rgb(image, start + offset)
            inputs = to_tensor([letterbox(image) for image in chunk], self.device)
            decoded, scores = self.raw_outputs(inputs)
            decoded_np, scores_np = decoded.cpu().numpy(), scores.cpu().numpy()
            for image, rows, row_scores in zip(chunk, decoded_np, scores_np, strict=True):
                results.append(self._postprocess(rows, row_scores, image.shape[1], image.shape[0]))
        return results

    def _postprocess(self, rows: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
                     width: int, height: int) -> Detections:
        if len(rows) == 2 * len(self.anchors):  # own and kept heads
            merged, merged_scores = self._merge_kept(rows, scores)
        else:
            merged, merged_scores = self._suppress(rows, scores)
        if self.max_hands is not None:
            merged, merged_scores = merged[:self.max_hands], merged_scores[:self.max_hands]
        # Input coordinates (0..1 of the letterboxed square) -> image pixels.
        side = max(width, height)
        offset = np.array([(width - side) / 2, (height - side) / 2], np.float32)
        points = merged.reshape(len(merged), merged.shape[1] // 2, 2) * side + offset
        return Detections(boxes=points[:, :2].reshape(-1, 4), scores=merged_scores,
                          keypoints=points[:, 2:], image_width=width, image_height=height)

    def _suppress(self, rows: FloatArray, scores: FloatArray) -> tuple[FloatArray, FloatArray]:
        keep = (scores >= self.score_threshold) & np.isfinite(rows).all(axis=1)  # a diverged net: no hang
        return weighted_nms(rows[keep], scores[keep])

    def _merge_kept(self, rows: FloatArray, scores: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The kept heads' detections as they are, plus the fine-tuned heads' where the kept ones
        found nothing: fine-tuning adds hands and never moves a box the initial heads drew (an
        average of both moved one labelled hand's crop enough to lose its keypoints)."""
        half = len(self.anchors)
        kept, kept_scores = self._suppress(rows[half:], scores[half:])
        own, own_scores = self._suppress(rows[:half], scores[:half])
        if len(kept) and len(own):
            new = (box_iou(own[:, :4], kept[:, :4]) <= MIN_SUPPRESSION_IOU).all(axis=1)
            own, own_scores = own[new], own_scores[new]
        merged, merged_scores = np.concatenate([kept, own]), np.concatenate([kept_scores, own_scores])
        order = np.argsort(-merged_scores, kind="stable")
        return merged[order], merged_scores[order]

    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneConfig | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        from hand_pose_refiner.models.mediapipe.training import fine_tune_detector

        return fine_tune_detector(self, dataset, config or FineTuneConfig(), val_dataset)
