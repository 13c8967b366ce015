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
    FineTuneReport,
    FineTuneSettings,
    HandDetector,
    resolve_device,
    settings_key,
)
from hand_pose_refiner.models.mediapipe.anchors import (
    MIN_SUPPRESSION_IOU,
    decode_boxes,
    generate_anchors,
    scores_from_logits,
    weighted_nms,
)
from hand_pose_refiner.models.mediapipe.geometry import FloatArray, crop, letterbox_roi, search_rois
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE, KEPT_HEADS, PalmDetectorNet
from hand_pose_refiner.models.mediapipe.palm_training import fine_tune_detector
from hand_pose_refiner.models.mediapipe.runtime import NetworkRunner, resolve_runtime
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


def network_input(batch: torch.Tensor) -> torch.Tensor:
    """A uint8 ``(n, h, w, 3)`` RGB batch -> the networks' float NCHW input in 0..1."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


class MediaPipeHandDetector(NetworkWeights, HandDetector):
    """Palm detection (MediaPipe Hands, full model) in native torch.

    ``checkpoint`` is a safetensors file from :meth:`save`; empty or None uses the pre-trained
    weights converted from the MediaPipe wheel. ``tile_size``, ``tiles_per_frame`` and
    ``tile_period`` are the tiles of :class:`~hand_pose_refiner.models.base.SupportsTiles`.
    ``runtime`` runs inference with torch or OpenVINO (see :mod:`.runtime`).
    """

    net: PalmDetectorNet

    network = NETWORK

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto",
                 score_threshold: float = 0.5, batch_size: int = 8, max_hands: int | None = None,
                 tile_size: float = 0.0, tiles_per_frame: int = 0, tile_period: int = 0,
                 runtime: str = "auto") -> None:
        self.device = resolve_device(device)
        self.runtime = resolve_runtime(runtime, self.device)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.max_hands = max_hands
        self.tile_size = tile_size
        self.tiles_per_frame = tiles_per_frame  # live streams (DetectionSchedule) only
        self.tile_period = tile_period
        self.net = PalmDetectorNet()
        self.name = "mediapipe/palm_detection_full"
        self.use_weights(checkpoint)
        self.anchors = torch.from_numpy(generate_anchors()).to(self.device)
        self._runner = NetworkRunner(self.net, self._decoded_outputs, INPUT_SIZE, self.runtime)

    def to_device(self, device: torch.device) -> None:
        super().to_device(device)
        self.anchors = self.anchors.to(device)

    def raw_outputs(self, crops: npt.NDArray[np.uint8]) -> tuple[FloatArray, FloatArray]:
        """Decoded boxes/keypoints (0..1 of the input) and scores of all anchors (of the own and
        then of the kept heads, when the net holds some; see :meth:`_merge_kept`) of a uint8
        ``(n, 192, 192, 3)`` batch of views."""
        decoded, scores = self._runner(crops)
        return decoded, scores

    def _decoded_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inference function :attr:`_runner` runs: uint8 views -> decoded anchors, scores."""
        regressions, logits = self.net.all_outputs(network_input(batch))
        anchors = self.anchors if regressions.shape[1] == len(self.anchors) else self.anchors.repeat(2, 1)
        return decode_boxes(regressions, anchors), scores_from_logits(logits)

    def load(self, path: str | Path) -> None:
        """Load a weight file; one with kept heads (see :meth:`PalmDetectorNet.keep_heads`) brings them."""
        self.net.kept_heads = None
        if has_kept_heads(Path(path)):
            self.net.keep_heads()
        super().load(path)

    def rois(self, width: int, height: int) -> FloatArray:
        """The square views the detector looks at, ``(n, 4)`` ROIs: the whole frame, then the
        half-overlapping tiles of ``tile_size`` (if any), where a hand too small in the whole
        frame's 192-pixel input is larger (the gloves of the glovebox footage are 12-25 pixels
        there, at the bottom of what the pre-trained detector finds).

        No tile is smaller than the detector's input: a hand that needs such a tile to be seen is
        a few dozen pixels at most, which the landmark network's 224-pixel crop only enlarges,
        and small frames (the bare-hand clips, 640x360) would pay 21 detector passes for hands
        they show large (a 640x360 frame gets no tiles of 0.5, a 1280x720 one 21)."""
        whole = letterbox_roi(width, height)[None]
        pixels = self.tile_size * min(width, height)
        if not self.tile_size or pixels >= max(width, height) or pixels < INPUT_SIZE:
            return whole  # no tiles, one as large as the whole frame (a square image), or too small
        side = pixels / height  # search_rois sizes are of the height
        return np.concatenate([whole, search_rois(width, height, (side,), 1)])

    def detect_views(self, image: npt.NDArray[np.uint8], views: FloatArray) -> Detections:
        """One image's detections from the given views (rows of :meth:`rois`, the whole frame
        first) in one forward pass, whatever ``batch_size``: the live schedule's per-frame call
        (:class:`~hand_pose_refiner.models.tile_rotation.TileRotation` picks the tiles). With
        every view of :meth:`rois` it finds what :meth:`detect` does."""
        check_rgb(image, 0)
        decoded, scores = self.raw_outputs(
            np.stack([crop(image, roi, INPUT_SIZE, border=cv2.BORDER_CONSTANT) for roi in views]))
        outputs = list(zip(decoded, scores, views, strict=True))
        return self._postprocess(outputs, image.shape[1], image.shape[0])

    def warm_up(self) -> None:
        self._runner.warm_up()

    def prediction_key(self) -> list[str]:
        tiles = [f"tile_size={self.tile_size}"] if self.tile_size else []
        tiles += ["runtime=openvino"] if self.runtime == "openvino" else []
        return settings_key({"score_threshold": self.score_threshold, "max_hands": self.max_hands}, tiles)

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        for index, image in enumerate(images):
            check_rgb(image, index)
        views = [(i, roi) for i, image in enumerate(images)
                 for roi in self.rois(image.shape[1], image.shape[0])]
        outputs: list[list[tuple[FloatArray, FloatArray, FloatArray]]] = [[] for _ in images]
        for start in range(0, len(views), self.batch_size):
            chunk = views[start:start + self.batch_size]
            decoded, scores = self.raw_outputs(
                np.stack([crop(images[i], roi, INPUT_SIZE, border=cv2.BORDER_CONSTANT) for i, roi in chunk]))
            for (i, roi), rows, row_scores in zip(chunk, decoded, scores, strict=True):
                outputs[i].append((rows, row_scores, roi))
        return [self._postprocess(views_of_image, image.shape[1], image.shape[0])
                for views_of_image, image in zip(outputs, images, strict=True)]

    def _postprocess(self, views: Sequence[tuple[FloatArray, FloatArray, FloatArray]],
                     width: int, height: int) -> Detections:
        """One image's detections from its views' decoded anchors ``(rows, scores, roi)``."""
        anchors = len(self.anchors)
        heads = 2 if len(views[0][0]) == 2 * anchors else 1  # own, then kept heads
        found = [self._candidates(views, width, height, slice(h * anchors, (h + 1) * anchors))
                 for h in range(heads)]
        merged, merged_scores = self._merge_kept(*found[0], *found[1]) if heads == 2 \
            else weighted_nms(*found[0])
        if self.max_hands is not None:
            merged, merged_scores = merged[:self.max_hands], merged_scores[:self.max_hands]
        # Whole-frame input coordinates (0..1 of the letterboxed square) -> image pixels.
        side = max(width, height)
        offset = np.array([(width - side) / 2, (height - side) / 2], np.float32)
        points = merged.reshape(len(merged), merged.shape[1] // 2, 2) * side + offset
        return Detections(boxes=points[:, :2].reshape(-1, 4), scores=merged_scores,
                          keypoints=points[:, 2:], image_width=width, image_height=height)

    def _candidates(self, views: Sequence[tuple[FloatArray, FloatArray, FloatArray]], width: int,
                    height: int, head: slice) -> tuple[FloatArray, FloatArray]:
        """The anchors of one set of heads that count, from every view, in the whole frame's input
        coordinates: scored at the threshold or more, finite (a diverged net must not hang NMS)
        and not cut by a tile's inner edge. The whole frame's own anchors stay as they are, so
        without tiles the detections are the whole frame's alone, to the bit."""
        whole = letterbox_roi(width, height)
        rows, scores = [], []
        for view_rows, view_scores, roi in views:
            view_rows, view_scores = view_rows[head], view_scores[head]
            keep = (view_scores >= self.score_threshold) & np.isfinite(view_rows).all(axis=1)
            if not np.array_equal(roi, whole):  # a tile
                keep &= _inside_tile(view_rows, roi, width, height)
                view_rows = _into_whole_frame(view_rows, roi, whole)
            rows.append(view_rows[keep])
            scores.append(view_scores[keep])
        return np.concatenate(rows), np.concatenate(scores)

    @staticmethod
    def _merge_kept(own_rows: FloatArray, own_scores: FloatArray, kept_rows: FloatArray,
                    kept_scores: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The kept heads' detections as they are, plus the fine-tuned heads' where the kept ones
        found nothing: fine-tuning adds hands and never moves a box the initial heads drew (an
        average of both moved one labelled hand's crop enough to lose its keypoints)."""
        kept, kept_scores = weighted_nms(kept_rows, kept_scores)
        own, own_scores = weighted_nms(own_rows, own_scores)
        if len(kept) and len(own):
            new = (box_iou(own[:, :4], kept[:, :4]) <= MIN_SUPPRESSION_IOU).all(axis=1)
            own, own_scores = own[new], own_scores[new]
        merged, merged_scores = np.concatenate([kept, own]), np.concatenate([kept_scores, own_scores])
        order = np.argsort(-merged_scores, kind="stable")
        return merged[order], merged_scores[order]

    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneSettings | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        with self._runner.torch_only():  # evaluated every epoch: see NetworkRunner.torch_only
            return fine_tune_detector(self, dataset, config or FineTuneSettings(), val_dataset)


def _into_whole_frame(rows: FloatArray, roi: FloatArray, whole: FloatArray) -> FloatArray:
    """Boxes and keypoints in 0..1 of a tile -> 0..1 of the whole frame's view."""
    scale = float(roi[2]) / float(whole[2])
    shift = (np.asarray(roi[:2], np.float64) - float(roi[2]) / 2
             - (np.asarray(whole[:2], np.float64) - float(whole[2]) / 2)) / float(whole[2])
    return (rows * scale + np.tile(shift, rows.shape[-1] // 2)).astype(np.float32)


def _inside_tile(rows: FloatArray, roi: FloatArray, width: int, height: int) -> npt.NDArray[np.bool_]:
    """Whether each box lies inside its tile, except where the tile meets the image edge: a hand cut
    by a tile's inner edge gives a partial box, and a neighbouring tile sees it whole."""
    side = float(roi[2])
    image = np.array([width, height], np.float32)
    low_edge = (np.array(roi[:2]) - side / 2) <= 0.5
    high_edge = (np.array(roi[:2]) + side / 2) >= image - 0.5
    margin = 0.01
    low_ok = (rows[:, 0:2] >= margin) | low_edge
    high_ok = (rows[:, 2:4] <= 1 - margin) | high_edge
    return np.asarray((low_ok & high_ok).all(axis=1))
