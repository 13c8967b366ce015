"""Fine-tuning of the two MediaPipe networks on COCO keypoint data.

Targets come from the 21 labelled keypoints alone, so any COCO hand dataset (or the refined
labels this project produces) can retrain both networks:

* landmark network: crops placed like MediaPipe's tracking ROI around the labelled hand, with
  random scale, rotation, shift and mirror (handedness swapped), colour, blur and glove-like
  skin recolouring; loss on keypoints (crop-normalised smooth L1), hand presence (positives and
  background crops) and handedness where labelled.
* palm detector: the whole image letterboxed after a random similarity transform; the target
  palm is the square around the 7 palm keypoints (the convention of the pre-trained model), the
  positive anchors are those near its centre at the matching stride; loss on anchor scores
  (hard negatives mined) and on box and keypoint regressions of the positives.

Each epoch writes a safetensors checkpoint (atomically) and evaluates a held-out split.

Under torchrun both loops train data-parallel (``models/distributed.py``): every process draws
the same global batches and trains on its share; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.hands import box_iou, boxes_from_keypoints
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import epe, pck
from hand_pose_refiner.models.augment import change_appearance, draw_geometry
from hand_pose_refiner.models.base import EpochResult, FineTuneConfig, FineTuneReport
from hand_pose_refiner.models.distributed import current
from hand_pose_refiner.models.mediapipe.anchors import decode_boxes
from hand_pose_refiner.models.mediapipe.geometry import (
    PALM_KEYPOINT_TO_HAND,
    FloatArray,
    crop,
    crop_to_image,
    image_to_crop,
    letterbox_roi,
    rois_from_landmarks,
)
from hand_pose_refiner.models.mediapipe.landmark import INPUT_SIZE as CROP_SIZE
from hand_pose_refiner.models.mediapipe.palm_detector import HEADS as DETECTOR_HEADS
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE as DETECTOR_SIZE
from hand_pose_refiner.skeleton import Handedness

if TYPE_CHECKING:
    from hand_pose_refiner.models.mediapipe.detector import MediaPipeHandDetector
    from hand_pose_refiner.models.mediapipe.estimator import MediaPipePoseEstimator

MIN_LABELLED = 8  # hands with fewer labelled keypoints are not used for training
NEGATIVE_FRACTION = 0.2  # share of landmark samples that are background crops


@dataclass
class _Hand:
    image: int
    keypoints: npt.NDArray[np.float32]  # (21, 2), NaN unlabelled
    handedness: int


def split_dataset(dataset: Sequence[CocoImage], config: FineTuneConfig,
                  val_dataset: Sequence[CocoImage] | None) -> tuple[list[CocoImage], list[CocoImage]]:
    """Train and held-out images: the given validation set, or a seeded share of ``dataset``."""
    if val_dataset is not None:
        return list(dataset), list(val_dataset)
    order = np.random.default_rng(config.seed).permutation(len(dataset))
    count = max(1, round(len(dataset) * config.val_fraction)) if len(dataset) > 1 else 0
    return [dataset[i] for i in order[count:]], [dataset[i] for i in order[:count]]


def _hands(images: Sequence[CocoImage]) -> list[_Hand]:
    hands = []
    for index, item in enumerate(images):
        for k in range(len(item.hands)):
            points = item.hands.keypoints[k]
            if np.isfinite(points).all(axis=1).sum() >= MIN_LABELLED:
                hands.append(_Hand(index, points, int(item.hands.handedness[k])))
    return hands


def _seed(config: FineTuneConfig) -> np.random.Generator:
    torch.manual_seed(config.seed)
    return np.random.default_rng(config.seed)


def trainable_parameters(net: torch.nn.Module, heads: tuple[str, ...],
                         freeze_backbone: bool) -> list[torch.nn.Parameter]:
    """All parameters, or only those of the top-level modules named in ``heads``."""
    for name, parameter in net.named_parameters():
        parameter.requires_grad_(not freeze_backbone or name.split(".")[0] in heads)
    return [p for p in net.parameters() if p.requires_grad]


def _local_rows(count: int) -> tuple[slice, float]:
    """This rank's rows of a global batch and the factor of its loss (see models/distributed.py).

    One process: all rows, factor 1. Data-parallel: a contiguous share; the losses divide by
    the whole batch's totals, so the shares add up to the batch's loss, and the factor (the
    process count) undoes DDP's gradient average. A rank whose share is empty (a last batch
    smaller than the process count) runs one row with factor 0, because every rank must take
    part in every gradient exchange.
    """
    parallel = current()
    if parallel is None:
        return slice(0, count), 1.0
    start, stop = parallel.part(count)
    if stop == start:
        return slice(0, 1), 0.0
    return slice(start, stop), float(parallel.world_size)


def _global_mean(total: float, count: int) -> float:
    """Mean over every rank's share (``total`` summed over ``count`` rows here)."""
    parallel = current()
    rows = float(count)
    if parallel is not None:
        total, rows = parallel.all_sum([total, rows])
    return total / max(rows, 1.0)


def _batch_loss(loss: torch.Tensor, factor: float) -> float:
    """The whole global batch's loss: the sum of the ranks' shares."""
    parallel = current()
    if parallel is None:
        return float(loss.detach())
    return parallel.all_sum([float(loss.detach()) * factor / parallel.world_size])[0]


def _training_net(net: torch.nn.Module) -> torch.nn.Module:
    parallel = current()
    return parallel.wrap(net) if parallel is not None else net


def _my_batches(batches: list) -> list:
    """This rank's share of whole batches (for the fit loss, a plain average over batches)."""
    parallel = current()
    return batches if parallel is None else batches[parallel.rank::parallel.world_size]


LANDMARK_HEADS = ("blocks", "last_expand", "last_depthwise", "handedness", "presence", "landmarks",
                  "world_landmarks")


def _checkpoint(save: Callable[[Path], Path], config: FineTuneConfig, name: str,
                epoch: int) -> Path | None:
    if config.checkpoint_dir is None:
        return None
    path = Path(config.checkpoint_dir) / f"{name}-epoch{epoch:03d}.safetensors"
    parallel = current()
    if parallel is None or parallel.is_main:  # one writer; every rank holds the same weights
        save(path)
    return path


# --------------------------------------------------------------------------- landmark network


def _landmark_sample(image: npt.NDArray[np.uint8], hand: _Hand, rng: np.random.Generator | None,
                     config: FineTuneConfig) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One crop, its keypoints in crop pixels, the presence and "left in mirror" targets."""
    roi = rois_from_landmarks(hand.keypoints[None])[0].astype(np.float64)
    right = {int(Handedness.RIGHT): 1.0, int(Handedness.LEFT): 0.0}.get(hand.handedness, math.nan)
    flip = False
    if rng is not None:
        geometry = draw_geometry(rng, config.augment)
        roi[0] += geometry.shift[0] * roi[2]
        roi[1] += geometry.shift[1] * roi[2]
        roi[2] /= geometry.scale
        roi[3] += geometry.rotation
        flip = geometry.flip
    patch = crop(image, roi, CROP_SIZE)
    points = image_to_crop(hand.keypoints[None], roi[None], CROP_SIZE)[0]
    if flip:
        patch = np.ascontiguousarray(patch[:, ::-1])
        points[:, 0] = CROP_SIZE - 1 - points[:, 0]
        right = 1.0 - right
    if rng is not None:
        patch = change_appearance(patch, rng, config.augment)
    return patch, points, 1.0, right


def _background_sample(image: npt.NDArray[np.uint8], hands: Sequence[_Hand],
                       rng: np.random.Generator) -> npt.NDArray[np.uint8] | None:
    """A crop away from every labelled hand (presence target 0), if the image has room."""
    height, width = image.shape[:2]
    for _ in range(10):
        size = rng.uniform(0.2, 0.5) * min(width, height)
        centre = rng.uniform([size / 2, size / 2], [width - size / 2, height - size / 2])
        clear = all(np.nanmin(np.abs(h.keypoints - centre).max(axis=1)) > size * 0.75 for h in hands)
        if clear:
            return crop(image, np.array([*centre, size, rng.uniform(-np.pi, np.pi)]), CROP_SIZE)
    return None


def landmark_loss_totals(points: torch.Tensor, presence: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """What the landmark loss divides by (labelled keypoints, samples, known handedness), for a batch.

    Data-parallel ranks compute it from the whole global batch, so that each rank's share of
    the loss adds up to the loss of the whole batch.
    """
    mask = torch.isfinite(points).all(dim=-1) & (presence[:, None] > 0.5)
    return torch.tensor([float(mask.sum()), float(len(points)), float(torch.isfinite(right).sum())])


def _landmark_loss(out_landmarks: torch.Tensor, presence_logit: torch.Tensor, left_logit: torch.Tensor,
                   points: torch.Tensor, presence: torch.Tensor, right: torch.Tensor,
                   totals: torch.Tensor | None = None) -> torch.Tensor:
    if totals is None:
        totals = landmark_loss_totals(points, presence, right)
    mask = torch.isfinite(points).all(dim=-1) & (presence[:, None] > 0.5)
    target = torch.nan_to_num(points) / CROP_SIZE
    coords = functional.smooth_l1_loss(out_landmarks[..., :2] / CROP_SIZE, target, reduction="none",
                                       beta=0.02)
    coord_loss = (coords.sum(-1) * mask).sum() / max(float(totals[0]), 1.0)
    presence_loss = functional.binary_cross_entropy_with_logits(presence_logit, presence,
                                                                reduction="sum") / max(float(totals[1]), 1.0)
    known = torch.isfinite(right)
    hand_loss = (functional.binary_cross_entropy_with_logits(left_logit[known], right[known], reduction="sum")
                 / max(float(totals[2]), 1.0) if known.any() else left_logit.sum() * 0)
    return coord_loss + 0.1 * presence_loss + 0.05 * hand_loss


def _landmark_batches(images: list[npt.NDArray[np.uint8]], hands: list[_Hand], config: FineTuneConfig,
                      rng: np.random.Generator | None) -> list[tuple[torch.Tensor, ...]]:
    """Batches of (crops, keypoints, presence, handedness); augmented when ``rng`` is given."""
    samples = []
    order = rng.permutation(len(hands) * config.samples_per_image) if rng is not None else \
        np.arange(len(hands))
    for index in order:
        hand = hands[index % len(hands)]
        samples.append(_landmark_sample(images[hand.image], hand, rng, config))
        if rng is not None and rng.random() < NEGATIVE_FRACTION:
            others = [h for h in hands if h.image == hand.image]
            background = _background_sample(images[hand.image], others, rng)
            if background is not None:
                samples.append((background, np.full((21, 2), np.nan, np.float32), 0.0, math.nan))
    batches: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, len(samples), config.batch_size):
        chunk = samples[start:start + config.batch_size]
        crops = torch.from_numpy(np.stack([s[0] for s in chunk])).permute(0, 3, 1, 2).float() / 255
        batches.append((crops, torch.from_numpy(np.stack([s[1] for s in chunk]).astype(np.float32)),
                        torch.tensor([s[2] for s in chunk], dtype=torch.float32),
                        torch.tensor([s[3] for s in chunk], dtype=torch.float32)))
    return batches


def _landmark_fit_loss(estimator: MediaPipePoseEstimator, batches: list[tuple[torch.Tensor, ...]]) -> float:
    net, device = estimator.net, estimator.device
    net.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for crops, points, presence, right in _my_batches(batches):
            out = net(crops.to(device))
            loss = _landmark_loss(out.landmarks, out.presence_logit, out.handedness_logit,
                                  points.to(device), presence.to(device), right.to(device))
            total += float(loss) * len(crops)
            count += len(crops)
    return _global_mean(total, count)


def evaluate_estimator(estimator: MediaPipePoseEstimator, images: Sequence[CocoImage],
                       alpha: float = 0.2) -> dict[str, float]:
    """PCK@alpha (box-normalised), EPE (pixels) and share of hands found present, on crops
    placed from the labelled keypoints (so the score measures the pose network alone)."""
    predicted, target, boxes, present = [], [], [], []
    for item in images:
        labelled = [k for k in range(len(item.hands))
                    if np.isfinite(item.hands.keypoints[k]).all(axis=1).sum() >= MIN_LABELLED]
        if not labelled:
            continue
        image = read_rgb(item.path)
        truth = item.hands.keypoints[labelled]
        rois = rois_from_landmarks(truth)
        result = estimator.predict_rois([image], [rois])[0]
        predicted.append(crop_to_image(result.crop_landmarks, rois, CROP_SIZE))
        target.append(truth)
        boxes.append(item.hands.boxes[labelled])
        present.append(result.presence >= estimator.min_presence)
    if not predicted:
        return {"pck": math.nan, "epe": math.nan, "presence_rate": math.nan, "hands": 0.0}
    pred, true = np.concatenate(predicted), np.concatenate(target)
    return {"pck": pck(pred, true, np.concatenate(boxes), alpha), "epe": epe(pred, true),
            "presence_rate": float(np.concatenate(present).mean()), "hands": float(len(true))}


def fine_tune_estimator(estimator: MediaPipePoseEstimator, dataset: Sequence[CocoImage],
                        config: FineTuneConfig, val_dataset: Sequence[CocoImage] | None) -> FineTuneReport:
    """Retrain the landmark network; returns losses and held-out metrics per epoch."""
    rng = _seed(config)
    train, val = split_dataset(dataset, config, val_dataset)
    hands = _hands(train)
    if not hands:
        raise ModelError(f"no training hand has {MIN_LABELLED} or more labelled keypoints")
    images = [read_rgb(item.path) for item in train]
    fit_batches = _landmark_batches(images, hands, config, None)
    initial_loss = _landmark_fit_loss(estimator, fit_batches)
    initial = evaluate_estimator(estimator, val, config.pck_alpha)
    parameters = trainable_parameters(estimator.net, LANDMARK_HEADS, config.freeze_backbone)
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    epochs = []
    model = _training_net(estimator.net)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        estimator.net.train()
        losses = []
        for batch in _landmark_batches(images, hands, config, rng):
            rows, weight = _local_rows(len(batch[0]))
            totals = landmark_loss_totals(*batch[1:])
            crops, points, presence, right = (t[rows].to(estimator.device) for t in batch)
            out = model(crops)
            loss = _landmark_loss(out.landmarks, out.presence_logit, out.handedness_logit,
                                  points, presence, right, totals)
            optimiser.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimiser.step()
            losses.append(_batch_loss(loss, weight))
        estimator.net.eval()
        metrics = evaluate_estimator(estimator, val, config.pck_alpha)
        metrics["fit_loss"] = _landmark_fit_loss(estimator, fit_batches)
        metrics["seconds"] = time.perf_counter() - started
        epochs.append(EpochResult(epoch, float(np.mean(losses)), metrics,
                                  _checkpoint(estimator.save, config, "hand_landmark", epoch)))
    return FineTuneReport(initial_loss, initial, epochs, len(train), len(val))


# --------------------------------------------------------------------------- palm detector


# The pre-trained detector's palm box side over the extent of the 7 labelled palm keypoints,
# measured on real images (test_models_finetune.py): annotators place the wrist and thumb base
# further out than the detector does (0.84 on ../shared/data/labelled_hands), the landmark
# network places them further in (1.10 on the bare-hand clips). A target box of the wrong
# convention is 0.77 (or 1.3) times the box the detector draws, and fine-tuning on it teaches the
# anchors that find the hand that they are background.
ANNOTATED_PALM_BOX_SCALE = 0.85
PREDICTED_PALM_BOX_SCALE = 1.10
REG_WEIGHT = 10.0
# An anchor cell at the coarse stride (16 px of 192): the detecting anchor of a small palm sits up
# to half a cell from its centre, so the zone left out of the loss is never smaller than this.
ANCHOR_CELL = 16 / 192
# A non-positive anchor whose box overlaps a target palm this much is a near miss, not background.
NEAR_MISS_IOU = 0.3


def palm_box_scale(config: FineTuneConfig) -> float:
    """The target palm box scale for ``config``'s keypoints (annotated or predicted)."""
    return PREDICTED_PALM_BOX_SCALE if config.pseudo_labels else ANNOTATED_PALM_BOX_SCALE


def palm_targets(keypoints: npt.ArrayLike, box_scale: float = ANNOTATED_PALM_BOX_SCALE,
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Palm box ``(n, 4)`` and 7 palm keypoints ``(n, 7, 2)`` from 21 hand keypoints.

    The pre-trained detector's box is an axis-aligned square around the palm; its side is
    ``box_scale`` times the extent of the palm keypoints (see :data:`ANNOTATED_PALM_BOX_SCALE`).
    """
    palm = np.asarray(keypoints, np.float32).reshape(-1, 21, 2)[:, list(PALM_KEYPOINT_TO_HAND)]
    low, high = np.nanmin(palm, axis=1), np.nanmax(palm, axis=1)
    centre = (low + high) / 2
    side = (high - low).max(axis=1, keepdims=True) * box_scale
    return np.concatenate([centre - side / 2, centre + side / 2], axis=1), palm


def _assign(anchors: npt.NDArray[np.float32], predicted: npt.NDArray[np.float32],
            boxes: npt.NDArray[np.float32], ignore: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Target palm of every anchor: its index, -1 background, -2 ignored (0..1 input units).

    The pre-trained model specialises its anchor slots by scale, so positives are chosen among
    the anchors near the palm centre by how well their current box (``predicted``, decoded)
    fits the target: IoU >= 0.5, else the best one. The other anchors around the palm (within
    0.75 palm sides or one anchor cell, or whose box overlaps the palm), and those inside
    ``ignore`` boxes (hands whose palm is not fully labelled), are left out of the loss instead
    of being taught that a hand is background.
    """
    owner = np.full(len(anchors), -1, np.intp)
    for box in ignore:  # doubled: the labelled keypoints may miss part of the hand
        centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]).max()
        owner[(np.abs(anchors - centre).max(axis=1) < half)
              | (box_iou(box, predicted)[0] > 0.1)] = -2
    for index, box in enumerate(boxes):
        centre, side = (box[:2] + box[2:]) / 2, box[2] - box[0]
        distance = np.abs(anchors - centre).max(axis=1)
        overlap = box_iou(box, predicted)[0]
        near = (distance < max(0.75 * side, ANCHOR_CELL)) | (overlap > NEAR_MISS_IOU)
        owner[near & (owner == -1)] = -2
        candidates = np.flatnonzero(distance < max(0.5 * side, 1.0 / 24))
        if candidates.size == 0:
            candidates = np.array([int(distance.argmin())])
        fit = overlap[candidates]
        chosen = candidates[fit >= 0.5] if (fit >= 0.5).any() else candidates[[int(fit.argmax())]]
        owner[chosen] = index
    return owner


def _detector_sample(image: npt.NDArray[np.uint8], hands: npt.NDArray[np.float32],
                     rng: np.random.Generator | None, config: FineTuneConfig,
                     views: FloatArray | None = None
                     ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Letterboxed (and augmented) input and its hands' keypoints in 0..1 input units.

    ``views`` are the square views the detector looks at (:meth:`MediaPipeHandDetector.rois`,
    the whole frame first; with ``FineTuneConfig.tile_samples``); in training a sample is one of
    them at random, so that a detector that also looks at tiles learns hands at the size it sees
    them there. In a tile, the keypoints outside it are unlabelled: a hand cut by the tile's
    edge is left out of the loss, as the detector drops a box cut by a tile's inner edge.
    """
    height, width = image.shape[:2]
    roi = letterbox_roi(width, height).astype(np.float64)
    tile = False
    if rng is not None and views is not None and len(views) > 1:
        choice = int(rng.integers(len(views)))
        roi, tile = np.asarray(views[choice], np.float64).copy(), choice > 0
    flip = False
    if rng is not None:
        geometry = draw_geometry(rng, config.augment, max_shift=0.1)
        roi[0] += geometry.shift[0] * roi[2]
        roi[1] += geometry.shift[1] * roi[2]
        roi[2] /= geometry.scale
        roi[3] = geometry.rotation
        flip = geometry.flip
    patch = crop(image, roi, DETECTOR_SIZE, border=cv2.BORDER_CONSTANT)
    points = image_to_crop(hands, np.repeat(roi[None], len(hands), axis=0), DETECTOR_SIZE) \
        if len(hands) else np.zeros((0, 21, 2), np.float32)
    if tile:
        outside = np.asarray(((points < 0) | (points > DETECTOR_SIZE)).any(axis=-1))
        points = np.where(outside[..., None], np.nan, points).astype(np.float32)
        points = points[np.isfinite(points).all(axis=-1).any(axis=-1)]
    if flip:
        patch = np.ascontiguousarray(patch[:, ::-1])
        points[..., 0] = DETECTOR_SIZE - 1 - points[..., 0]
    if rng is not None:
        patch = change_appearance(patch, rng, config.augment)
    return patch, np.asarray(points / DETECTOR_SIZE, np.float32)


def detector_loss_totals(targets: Sequence[npt.NDArray[np.float32]]) -> tuple[int, int]:
    """What the detector loss divides by: images, and images with a fully labelled palm (those
    have positive anchors); data-parallel ranks take it from the whole global batch."""
    with_palm = sum(bool(np.isfinite(hands[:, list(PALM_KEYPOINT_TO_HAND)]).all(axis=(1, 2)).any())
                    for hands in targets)
    return len(targets), with_palm


def _detector_loss(regressions: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
                   targets: list[npt.NDArray[np.float32]], box_scale: float,
                   totals: tuple[int, int] | None = None) -> torch.Tensor:
    images, with_palm = totals if totals is not None else detector_loss_totals(targets)
    anchors_np = anchors.cpu().numpy()
    predicted = decode_boxes(regressions.detach(), anchors)[..., :4].cpu().numpy()
    class_losses, reg_losses = [], []
    for b, hands in enumerate(targets):
        usable = np.isfinite(hands[:, list(PALM_KEYPOINT_TO_HAND)]).all(axis=(1, 2))
        boxes, palm = (palm_targets(hands[usable], box_scale) if usable.any()
                       else (np.zeros((0, 4), np.float32), None))
        owner = _assign(anchors_np, predicted[b], boxes, boxes_from_keypoints(hands[~usable]))
        positive = torch.from_numpy(owner >= 0).to(logits.device)
        negative = torch.from_numpy(owner == -1).to(logits.device)
        bce = functional.binary_cross_entropy_with_logits(logits[b], positive.float(), reduction="none")
        negatives = bce[negative]
        hard = negatives.topk(min(len(negatives), max(3 * int(positive.sum()), 16))).values
        class_losses.append((bce[positive].sum() + hard.sum()) / max(int(positive.sum()), 1))
        if positive.any():
            assert palm is not None  # positive anchors exist only where a palm was labelled
            index = owner[owner >= 0]
            centre = (boxes[index, :2] + boxes[index, 2:]) / 2
            side = boxes[index, 2:3] - boxes[index, 0:1]
            rows = np.concatenate([centre - anchors_np[owner >= 0], side, side,
                                   (palm[index] - anchors_np[owner >= 0][:, None]).reshape(-1, 14)],
                                  axis=1)
            target = torch.from_numpy(rows.astype(np.float32)).to(regressions.device)
            reg_losses.append(functional.smooth_l1_loss(regressions[b][positive] / DETECTOR_SIZE, target,
                                               beta=0.01, reduction="sum") / len(index))
    loss = torch.stack(class_losses).sum() / max(images, 1)
    if reg_losses:
        loss = loss + REG_WEIGHT * torch.stack(reg_losses).sum() / max(with_palm, 1)
    return loss


def _detector_batches(images: list[npt.NDArray[np.uint8]], labels: list[CocoImage], config: FineTuneConfig,
                      rng: np.random.Generator | None,
                      detector: MediaPipeHandDetector | None = None
                      ) -> list[tuple[torch.Tensor, list[np.ndarray]]]:
    order = rng.permutation(len(images) * config.samples_per_image) if rng is not None else \
        np.arange(len(images))
    samples = []
    for i in order:
        image = images[i % len(images)]
        views = detector.rois(image.shape[1], image.shape[0]) if detector is not None else None
        samples.append(_detector_sample(image, labels[i % len(images)].hands.keypoints, rng, config, views))
    batches: list[tuple[torch.Tensor, list[npt.NDArray[np.float32]]]] = []
    for start in range(0, len(samples), config.batch_size):
        chunk = samples[start:start + config.batch_size]
        inputs = torch.from_numpy(np.stack([s[0] for s in chunk])).permute(0, 3, 1, 2).float() / 255
        batches.append((inputs, [s[1] for s in chunk]))
    return batches


def _detector_fit_loss(detector: MediaPipeHandDetector, batches: list[tuple[torch.Tensor, list]],
                       box_scale: float) -> float:
    detector.net.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for inputs, targets in _my_batches(batches):
            regressions, logits = detector.net(inputs.to(detector.device))
            total += float(_detector_loss(regressions, logits, detector.anchors, targets,
                                          box_scale)) * len(inputs)
            count += len(inputs)
    return _global_mean(total, count)


def evaluate_detector(detector: MediaPipeHandDetector, images: Sequence[CocoImage],
                      box_scale: float = ANNOTATED_PALM_BOX_SCALE) -> dict[str, float]:
    """Detection rate (labelled hands whose palm a detection covers with IoU >= 0.5), false
    detections per image and mean IoU of the matched palm boxes."""
    found, total, false, ious = 0, 0, 0, []
    for item in images:
        image = read_rgb(item.path)
        detections = detector.detect([image])[0]
        points = item.hands.keypoints
        usable = np.isfinite(points[:, list(PALM_KEYPOINT_TO_HAND)]).all(axis=(1, 2))
        boxes = palm_targets(points[usable], box_scale)[0] if usable.any() else np.zeros((0, 4), np.float32)
        matched = np.zeros(len(detections), bool)
        for box in boxes:
            total += 1
            if not len(detections):
                continue
            overlap = box_iou(box, detections.boxes)[0]
            best = int(overlap.argmax())
            if overlap[best] >= 0.5:
                found += 1
                matched[best] = True
                ious.append(float(overlap[best]))
        false += int((~matched).sum())
    return {"detection_rate": found / total if total else math.nan,
            "false_per_image": false / max(len(images), 1),
            "palm_iou": float(np.mean(ious)) if ious else math.nan, "hands": float(total)}


def fine_tune_detector(detector: MediaPipeHandDetector, dataset: Sequence[CocoImage],
                       config: FineTuneConfig, val_dataset: Sequence[CocoImage] | None) -> FineTuneReport:
    """Retrain the palm detector; returns losses and held-out metrics per epoch."""
    rng = _seed(config)
    train, val = split_dataset(dataset, config, val_dataset)
    if not _hands(train):
        raise ModelError(f"no training hand has {MIN_LABELLED} or more labelled keypoints")
    images = [read_rgb(item.path) for item in train]
    fit_batches = _detector_batches(images, train, config, None)
    box_scale = palm_box_scale(config)
    # A given validation set is scored as annotated; a share of the training data like the rest.
    val_scale = ANNOTATED_PALM_BOX_SCALE if val_dataset is not None else box_scale
    initial_loss = _detector_fit_loss(detector, fit_batches, box_scale)
    initial = evaluate_detector(detector, val, val_scale)
    if (config.keep_initial or detector.net.kept_heads is not None) and not config.freeze_backbone:
        raise ModelError("the palm detector's kept heads read the backbone's features: fine-tuning "
                         "with keep_initial, or a detector that holds kept heads, needs freeze_backbone")
    if config.keep_initial and detector.net.kept_heads is None:
        detector.net.keep_heads()
    parameters = trainable_parameters(detector.net, DETECTOR_HEADS, config.freeze_backbone)
    if detector.net.kept_heads is not None:  # never trained, whatever is frozen
        detector.net.kept_heads.requires_grad_(False)
        parameters = [p for p in parameters if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    epochs = []
    model = _training_net(detector.net)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        detector.net.train()
        losses = []
        for inputs, targets in _detector_batches(images, train, config, rng,
                                                 detector if config.tile_samples else None):
            rows, weight = _local_rows(len(inputs))
            regressions, logits = model(inputs[rows].to(detector.device))
            loss = _detector_loss(regressions, logits, detector.anchors, targets[rows], box_scale,
                                  detector_loss_totals(targets))
            optimiser.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimiser.step()
            losses.append(_batch_loss(loss, weight))
        detector.net.eval()
        metrics = evaluate_detector(detector, val, val_scale)
        metrics["fit_loss"] = _detector_fit_loss(detector, fit_batches, box_scale)
        metrics["seconds"] = time.perf_counter() - started
        epochs.append(EpochResult(epoch, float(np.mean(losses)), metrics,
                                  _checkpoint(detector.save, config, "palm_detection", epoch)))
    return FineTuneReport(initial_loss, initial, epochs, len(train), len(val))
