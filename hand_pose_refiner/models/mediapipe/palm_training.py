"""Fine-tuning of the MediaPipe palm detector on COCO keypoint data.

The whole image letterboxed after a random similarity transform; the target palm is the square
around the 7 palm keypoints (the convention of the pre-trained model), the positive anchors are
those near its centre at the matching stride; loss on anchor scores (hard negatives mined) and on
box and keypoint regressions of the positives. The shared parts are in :mod:`.training`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
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
from hand_pose_refiner.models.augment import change_appearance, draw_geometry
from hand_pose_refiner.models.base import EpochResult, FineTuneReport, FineTuneSettings, split_dataset
from hand_pose_refiner.models.mediapipe.anchors import decode_boxes
from hand_pose_refiner.models.mediapipe.geometry import (
    PALM_KEYPOINT_TO_HAND,
    FloatArray,
    crop,
    image_to_crop,
    letterbox_roi,
)
from hand_pose_refiner.models.mediapipe.palm_detector import HEADS as DETECTOR_HEADS
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE as DETECTOR_SIZE
from hand_pose_refiner.models.mediapipe.training import (
    MIN_LABELLED,
    batch_loss,
    global_mean,
    labelled_hands,
    local_rows,
    my_batches,
    save_epoch_checkpoint,
    seeded_rng,
    trainable_parameters,
    training_net,
)

if TYPE_CHECKING:
    from hand_pose_refiner.models.mediapipe.detector import MediaPipeHandDetector

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


def palm_box_scale(config: FineTuneSettings) -> float:
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
                     rng: np.random.Generator | None, config: FineTuneSettings,
                     views: FloatArray | None = None
                     ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Letterboxed (and augmented) input and its hands' keypoints in 0..1 input units.

    ``views`` are the square views the detector looks at (:meth:`MediaPipeHandDetector.rois`,
    the whole frame first; with ``FineTuneSettings.tile_samples``); in training a sample is one of
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


def _detector_batches(images: list[npt.NDArray[np.uint8]], labels: list[CocoImage], config: FineTuneSettings,
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
        for inputs, targets in my_batches(batches):
            regressions, logits = detector.net(inputs.to(detector.device))
            total += float(_detector_loss(regressions, logits, detector.anchors, targets,
                                          box_scale)) * len(inputs)
            count += len(inputs)
    return global_mean(total, count)


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
                       config: FineTuneSettings, val_dataset: Sequence[CocoImage] | None) -> FineTuneReport:
    """Retrain the palm detector; returns losses and held-out metrics per epoch."""
    rng = seeded_rng(config)
    train, val = split_dataset(dataset, config, val_dataset)
    if not labelled_hands(train):
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
    model = training_net(detector.net)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        detector.net.train()
        losses = []
        for inputs, targets in _detector_batches(images, train, config, rng,
                                                 detector if config.tile_samples else None):
            rows, weight = local_rows(len(inputs))
            regressions, logits = model(inputs[rows].to(detector.device))
            loss = _detector_loss(regressions, logits, detector.anchors, targets[rows], box_scale,
                                  detector_loss_totals(targets))
            optimiser.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimiser.step()
            losses.append(batch_loss(loss, weight))
        detector.net.eval()
        metrics = evaluate_detector(detector, val, val_scale)
        metrics["fit_loss"] = _detector_fit_loss(detector, fit_batches, box_scale)
        metrics["seconds"] = time.perf_counter() - started
        epochs.append(EpochResult(epoch, float(np.mean(losses)), metrics,
                                  save_epoch_checkpoint(detector.save, config, "palm_detection", epoch)))
    return FineTuneReport(initial_loss, initial, epochs, len(train), len(val))
