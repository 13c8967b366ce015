"""The MediaPipe hand landmark network behind the :class:`PoseEstimator` interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.hands import FrameHands, box_iou
from hand_pose_refiner.models.base import (
    Detections,
    FineTuneReport,
    FineTuneSettings,
    PoseEstimator,
    resolve_device,
    settings_key,
)
from hand_pose_refiner.models.mediapipe.detector import check_rgb, network_input
from hand_pose_refiner.models.mediapipe.geometry import (
    FloatArray,
    crop,
    crop_to_image,
    rois_from_landmarks,
    rois_from_palms,
    search_rois,
)
from hand_pose_refiner.models.mediapipe.landmark import INPUT_SIZE, HandLandmarkNet
from hand_pose_refiner.models.mediapipe.landmark_training import fine_tune_estimator
from hand_pose_refiner.models.mediapipe.runtime import NetworkRunner, resolve_runtime
from hand_pose_refiner.models.mediapipe.weights import NetworkWeights
from hand_pose_refiner.skeleton import Handedness

NETWORK = "hand_landmark_full"
# The presence a hand found by the crop search needs, whatever the estimator's min_presence: the
# search scores hundreds of crops per image where the detector proposes a few, so a low candidate
# threshold would let in as many more false hands (66 pseudo-labels, mostly not hands, at 0.2).
SEARCH_MIN_PRESENCE = 0.5
BOX_ROI_SCALE = 1.5  # a detector without palm keypoints gives a hand box: crop around it
# Self-check: the landmarks of a real hand barely move when the network sees the crop their own
# positions define (MediaPipe's tracking step); on the hand-shaped objects of a cell (wooden
# blocks, a gripper) the presence collapses or the keypoints jump. Measured on the gloved
# glovebox frames: hands keep presence 0.73-0.91 and move 0.02-0.05 crop sides; blocks and the
# gripper fall to presence 0.00-0.23.
SELF_CHECK_MAX_SHIFT = 0.1  # mean keypoint shift between the two estimates, in crop sides
# Consistency check (pseudo-labels only: 18 more landmark passes per hand): a real hand gives the
# same keypoints when its crop is turned, scaled and shifted; an object the network dresses up as
# a hand gives other fingers each time. Measured on the 46 pseudo-labels of the gloved frames'
# first round (each judged on its crop): keypoint spread 0.04-0.12 crop sides (median 0.08) for
# the 26 hands, 0.10-0.13 (median 0.12) for the 20 objects; 0.10 keeps 19 hands and 2 objects.
CONSISTENCY_MAX_SPREAD = 0.1  # mean distance of the perturbed estimates to their median, crop sides
CONSISTENCY_ROTATIONS = (-0.45, 0.0, 0.45)  # radians
CONSISTENCY_SCALES = (0.8, 1.25)
CONSISTENCY_SHIFTS = ((0.0, 0.0), (0.12, -0.12), (-0.12, 0.12))  # crop sides


@dataclass
class CropPrediction:
    """Landmark network output for ``n`` ROIs, landmarks still in crop pixels."""

    rois: npt.NDArray[np.float32]
    crop_landmarks: npt.NDArray[np.float32]  # (n, 21, 2), 0..224
    presence: npt.NDArray[np.float32]  # (n,)
    left_in_mirror: npt.NDArray[np.float32]  # (n,) sigmoid of the handedness head

    def select(self, index: npt.NDArray[np.intp]) -> CropPrediction:
        """The predictions of the ROIs ``index``, in that order."""
        return CropPrediction(self.rois[index], self.crop_landmarks[index], self.presence[index],
                              self.left_in_mirror[index])


def associate(rois: npt.NDArray[np.float32], threshold: float = 0.5) -> npt.NDArray[np.intp]:
    """Indices of the ROIs kept by MediaPipe's AssociationNormRectCalculator.

    Two palm detections of one hand (e.g. one of them upside down) would give two crops of the
    same hand; MediaPipe keeps one of each overlapping pair (IoU of the unrotated squares above
    0.5), the one that comes later in the list, and so does the port.
    """
    kept: list[int] = []
    for index, roi in enumerate(rois):
        box = np.array([roi[0] - roi[2] / 2, roi[1] - roi[2] / 2, roi[0] + roi[2] / 2, roi[1] + roi[2] / 2],
                       np.float32)
        if kept:
            others = rois[kept]
            half = others[:, 2:3] / 2
            boxes = np.concatenate([others[:, :2] - half, others[:, :2] + half], axis=1)
            kept = [k for k, iou in zip(kept, box_iou(box, boxes)[0], strict=True) if iou <= threshold]
        kept.append(index)
    return np.asarray(kept, np.intp)


def one_crop_per_hand(rois: npt.NDArray[np.float32],
                      presence: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Indices (ascending) of the ROIs kept when, of two overlapping ones, the surer crop stays.

    :func:`associate` with the ROIs ordered by the landmark network's presence, so that the later
    of an overlapping pair is the one it is surer of. MediaPipe keeps the later in the detector's
    order, which is by score: the *lower*-scored palm of the two. On gloves that often was the
    crop without a hand (presence 0.06 kept, 0.90 dropped), so the network now looks at every
    detected crop first; a hand seen twice costs one more landmark pass.
    """
    order = np.argsort(presence, kind="stable")
    return np.sort(order[associate(rois[order])])


def rois_from_detections(detections: Detections) -> npt.NDArray[np.float32]:
    """Crop ROIs: MediaPipe's rotated palm ROI with 7 palm keypoints, else a square on the box."""
    if len(detections) and detections.keypoints.shape[1] == 7:
        return rois_from_palms(detections.boxes, detections.keypoints)
    boxes = detections.boxes.astype(np.float64)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * BOX_ROI_SCALE
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, size,
                     np.zeros_like(size)], axis=-1).astype(np.float32)


class MediaPipePoseEstimator(NetworkWeights, PoseEstimator):
    """21 hand keypoints from rotated 224x224 crops (MediaPipe Hands, full model) in torch.

    The network does not score single keypoints; each keypoint gets the hand presence score,
    and 0 when it falls outside the image. MediaPipe labels handedness as if the image were
    mirrored (a selfie camera); ``mirrored=False`` (a robot cell camera) swaps it back.
    ``runtime`` runs inference with torch or OpenVINO (see :mod:`.runtime`).
    """

    network = NETWORK

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto",
                 batch_size: int = 8, min_presence: float = 0.5, mirrored: bool = False,
                 self_check: bool = False, self_check_max_shift: float = SELF_CHECK_MAX_SHIFT,
                 search_sizes: tuple[float, ...] = (), search_rotations: int = 4,
                 consistency_check: bool = False,
                 consistency_max_spread: float = CONSISTENCY_MAX_SPREAD, surest_crop: bool = False,
                 runtime: str = "auto") -> None:
        self.device = resolve_device(device)
        self.runtime = resolve_runtime(runtime, self.device)
        # Off: MediaPipe's association, before the landmark network (see one_crop_per_hand()).
        self.surest_crop = surest_crop
        # Off live: for refinement's pseudo-labels, where precision is worth 18 passes a hand.
        self.consistency_check = consistency_check
        self.consistency_max_spread = consistency_max_spread
        # A crop search for hands the palm detector misses (refinement's first rounds on gloves):
        # crop sides as fractions of the image height; empty: none. See search_rois().
        self.search_sizes = tuple(search_sizes)
        self.search_rotations = search_rotations
        self.batch_size = batch_size
        self.min_presence = min_presence
        self.mirrored = mirrored
        self.self_check = self_check
        self.self_check_max_shift = self_check_max_shift
        self.net = HandLandmarkNet()
        self.name = "mediapipe/hand_landmark_full"
        self.use_weights(checkpoint)
        self._runner = NetworkRunner(self.net, self._crop_outputs, INPUT_SIZE, self.runtime)

    def predict_crops(self, crops: Sequence[npt.NDArray[np.uint8]]) -> tuple[np.ndarray, ...]:
        """Landmarks (crop pixels), presence and handedness for a list of 224x224 RGB crops."""
        landmarks, presence, left = [], [], []
        for start in range(0, len(crops), self.batch_size):
            batch = self._runner(np.stack(crops[start:start + self.batch_size]))
            landmarks.append(batch[0])
            presence.append(batch[1])
            left.append(batch[2])
        if not crops:
            return np.zeros((0, 21, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(landmarks), np.concatenate(presence), np.concatenate(left)

    def _crop_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The inference function :attr:`_runner` runs: uint8 crops -> landmarks (x, y in crop
        pixels), presence and left-hand probabilities."""
        out = self.net(network_input(batch))
        return out.landmarks[..., :2], torch.sigmoid(out.presence_logit), torch.sigmoid(out.handedness_logit)

    def predict_rois(self, images: Sequence[npt.NDArray[np.uint8]],
                     rois: Sequence[npt.NDArray[np.float32]]) -> list[CropPrediction]:
        """Run the network on given ROIs (rows ``cx, cy, size, rotation``) of each image."""
        crops, owners = [], []
        for index, (image, image_rois) in enumerate(zip(images, rois, strict=True)):
            check_rgb(image, index)
            for roi in np.asarray(image_rois, np.float32).reshape(-1, 4):
                crops.append(crop(image, roi, INPUT_SIZE))
                owners.append(index)
        landmarks, presence, left = self.predict_crops(crops)
        owners_np = np.asarray(owners, np.intp)
        return [CropPrediction(np.asarray(image_rois, np.float32).reshape(-1, 4),
                               landmarks[owners_np == i], presence[owners_np == i],
                               left[owners_np == i])
                for i, image_rois in enumerate(rois)]

    def warm_up(self) -> None:
        self._runner.warm_up()

    def prediction_key(self) -> list[str]:
        later = [f"consistency={self.consistency_max_spread}"] if self.consistency_check else []
        later += ["surest_crop"] if self.surest_crop else []
        later += ["runtime=openvino"] if self.runtime == "openvino" else []
        return settings_key({"min_presence": self.min_presence, "mirrored": self.mirrored,
                             "self_check": self.self_check, "self_check_max_shift": self.self_check_max_shift,
                             "search_sizes": self.search_sizes, "search_rotations": self.search_rotations},
                            later)

    def estimate(self, images: Sequence[npt.NDArray[np.uint8]], detections: Sequence[Detections],
                 stamps_ns: Sequence[int] | None = None) -> list[FrameHands]:
        detections = list(detections)
        if not self.surest_crop:
            detections = [d.select(associate(rois_from_detections(d))) for d in detections]
        rois = [rois_from_detections(d) for d in detections]
        detected = [len(r) for r in rois]  # the search grid's ROIs follow these
        if self.search_sizes:
            detections, rois = self._with_search(images, detections, rois)
        predictions = self.predict_rois(images, rois)
        if self.self_check:
            predictions = [self._checked(image, prediction)
                           for image, prediction in zip(images, predictions, strict=True)]
        for index, count in enumerate(detected):
            # Hundreds of grid crops per image: each must be as sure as a live hand.
            prediction = predictions[index]
            searched = prediction.presence[count:]
            searched[searched < SEARCH_MIN_PRESENCE] = 0.0
            if self.surest_crop:
                kept = np.concatenate([one_crop_per_hand(rois[index][:count], prediction.presence[:count]),
                                       np.arange(count, len(rois[index]))])
                detections[index] = detections[index].select(kept)
                predictions[index] = prediction.select(kept)
        if self.consistency_check:
            for image, prediction in zip(images, predictions, strict=True):
                self._check_consistency(image, prediction)
        stamps = list(stamps_ns) if stamps_ns is not None else [0] * len(images)
        return [self._frame(image, detection, prediction, stamp)
                for image, detection, prediction, stamp in zip(images, detections, predictions, stamps,
                                                               strict=True)]

    def _with_search(self, images: Sequence[npt.NDArray[np.uint8]], detections: list[Detections],
                     rois: list[FloatArray]) -> tuple[list[Detections], list[FloatArray]]:
        """Each image's detections and ROIs plus the search grid (detection score 1, no box).

        Every grid crop in which the network sees a hand becomes a candidate; with the self-check
        on, only those that hold up on their own landmarks' crop stay, and the spatial filter's
        duplicate rule merges the overlapping crops of one hand. Costs a landmark pass per grid
        crop: about 500 for a 1920x1080 image at three sizes and four angles (seconds on a CPU).
        """
        out_detections, out_rois = [], []
        for image, found, image_rois in zip(images, detections, rois, strict=True):
            height, width = image.shape[:2]
            grid = search_rois(width, height, self.search_sizes, self.search_rotations)
            boxes = np.concatenate([found.boxes, np.zeros((len(grid), 4), np.float32)])
            points = np.concatenate([found.keypoints, np.zeros((len(grid), *found.keypoints.shape[1:]),
                                                               found.keypoints.dtype)])
            scores = np.concatenate([found.scores, np.ones(len(grid), np.float32)])
            out_detections.append(Detections(boxes, scores, points, width, height))
            out_rois.append(np.concatenate([image_rois.reshape(-1, 4), grid]))
        return out_detections, out_rois

    def _checked(self, image: npt.NDArray[np.uint8], prediction: CropPrediction,
                 only: npt.NDArray[np.bool_] | None = None) -> CropPrediction:
        """The prediction repeated on the crop its own landmarks define, scored by both passes.

        A hand keeps the second pass's landmarks (MediaPipe's tracking crop fits the hand
        better than the detector's) and the lower of the two presences; one whose keypoints
        move more than ``self_check_max_shift`` crop sides between the passes scores 0.
        """
        present = prediction.presence >= self.min_presence
        if only is not None:
            present &= only
        if not present.any():
            return prediction
        first = crop_to_image(prediction.crop_landmarks[present], prediction.rois[present], INPUT_SIZE)
        (again,) = self.predict_rois([image], [rois_from_landmarks(first)])
        second = crop_to_image(again.crop_landmarks, again.rois, INPUT_SIZE)
        shift = np.linalg.norm(second - first, axis=-1).mean(axis=-1) / np.maximum(again.rois[:, 2], 1.0)
        checked = CropPrediction(prediction.rois.copy(), prediction.crop_landmarks.copy(),
                                 prediction.presence.copy(), prediction.left_in_mirror.copy())
        checked.rois[present] = again.rois
        checked.crop_landmarks[present] = again.crop_landmarks
        checked.presence[present] = np.where(shift <= self.self_check_max_shift,
                                             np.minimum(prediction.presence[present], again.presence), 0.0)
        checked.left_in_mirror[present] = again.left_in_mirror
        return checked

    def keypoint_spread(self, image: npt.NDArray[np.uint8], keypoints: npt.ArrayLike) -> FloatArray:
        """How far the keypoints of each hand ``(n, 21, 2)`` move when the landmark network sees
        its crop turned, scaled and shifted: the mean distance of the perturbed estimates to
        their median, in crop sides."""
        base = rois_from_landmarks(np.asarray(keypoints, np.float32).reshape(-1, 21, 2))
        offsets = np.array([(dx, dy, scale, turn) for turn in CONSISTENCY_ROTATIONS
                            for scale in CONSISTENCY_SCALES for dx, dy in CONSISTENCY_SHIFTS], np.float32)
        rois = np.repeat(base, len(offsets), axis=0)
        rois[:, 0] += np.tile(offsets[:, 0], len(base)) * rois[:, 2]
        rois[:, 1] += np.tile(offsets[:, 1], len(base)) * rois[:, 2]
        rois[:, 2] *= np.tile(offsets[:, 2], len(base))
        rois[:, 3] += np.tile(offsets[:, 3], len(base))
        (perturbed,) = self.predict_rois([image], [rois])
        points = crop_to_image(perturbed.crop_landmarks, perturbed.rois, INPUT_SIZE)
        points = points.reshape(len(base), len(offsets), 21, 2)
        median = np.median(points, axis=1, keepdims=True)
        spread = np.linalg.norm(points - median, axis=-1).mean(axis=(1, 2))
        return (spread / np.maximum(base[:, 2], 1.0)).astype(np.float32)

    def _check_consistency(self, image: npt.NDArray[np.uint8], prediction: CropPrediction) -> None:
        """Score 0 (in place) every present hand whose keypoints spread too far under perturbation."""
        present = np.flatnonzero(prediction.presence >= self.min_presence)
        if not present.size:
            return
        keypoints = crop_to_image(prediction.crop_landmarks[present], prediction.rois[present], INPUT_SIZE)
        spread = self.keypoint_spread(image, keypoints)
        prediction.presence[present[spread > self.consistency_max_spread]] = 0.0

    tracks_landmarks = True

    def estimate_tracked(self, image: npt.NDArray[np.uint8], previous: FrameHands, stamp_ns: int,
                         detections: Detections | None = None) -> FrameHands:
        """MediaPipe's video mode: crop where the previous frame's landmarks were.

        Each hand of ``previous`` gives a crop region from its landmarks; ``detections`` add
        regions for new hands, and where a detection overlaps a followed hand the followed
        region is kept (MediaPipe's association keeps the later of two overlapping regions).
        A followed hand that is gone scores a low presence and drops out.
        """
        rois = rois_from_landmarks(previous.keypoints) if len(previous) else np.zeros((0, 4), np.float32)
        scores = np.ones(len(rois), np.float32)
        detected = np.zeros(len(rois), bool)
        if detections is not None and len(detections):
            candidates = np.concatenate([rois_from_detections(detections), rois])
            candidate_scores = np.concatenate([detections.scores, scores])
            kept = associate(candidates)
            rois, scores, detected = candidates[kept], candidate_scores[kept], kept < len(detections)
        (prediction,) = self.predict_rois([image], [rois])
        if self.self_check:  # followed hands are re-cropped from landmarks already; new ones are checked
            prediction = self._checked(image, prediction, detected)
        height, width = image.shape[:2]
        regions = Detections(np.zeros((len(rois), 4), np.float32), scores,
                             np.zeros((len(rois), 0, 2), np.float32), width, height)
        return self._frame(image, regions, prediction, stamp_ns)

    def _frame(self, image: npt.NDArray[np.uint8], detection: Detections, prediction: CropPrediction,
               stamp_ns: int) -> FrameHands:
        height, width = image.shape[:2]
        keep = prediction.presence >= self.min_presence
        keypoints = crop_to_image(prediction.crop_landmarks[keep], prediction.rois[keep], INPUT_SIZE)
        inside = ((keypoints[..., 0] >= 0) & (keypoints[..., 0] <= width - 1)
                  & (keypoints[..., 1] >= 0) & (keypoints[..., 1] <= height - 1))
        presence = prediction.presence[keep]
        # sigmoid = P(MediaPipe says "Left"); MediaPipe assumes a mirrored image, so that is the
        # probability of a right hand in a camera's unmirrored image.
        right = prediction.left_in_mirror[keep] if not self.mirrored else 1 - prediction.left_in_mirror[keep]
        handedness = np.where(right >= 0.5, int(Handedness.RIGHT), int(Handedness.LEFT))
        return FrameHands(
            stamp_ns, width, height, keypoints,
            keypoint_scores=np.where(inside, presence[:, None], 0.0),
            detection_scores=presence * detection.scores[keep] if len(detection) else presence,
            handedness=handedness,
            handedness_scores=np.maximum(right, 1 - right),
            model_name=self.name,
        )

    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneSettings | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        with self._runner.torch_only():  # evaluated every epoch: see NetworkRunner.torch_only
            return fine_tune_estimator(self, dataset, config or FineTuneSettings(), val_dataset)
