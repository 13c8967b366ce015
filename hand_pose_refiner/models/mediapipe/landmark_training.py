"""Fine-tuning of the MediaPipe landmark network on COCO keypoint data.

Crops placed like MediaPipe's tracking ROI around the labelled hand, with random scale, rotation,
shift and mirror (handedness swapped), colour, blur and glove-like skin recolouring; loss on
keypoints (crop-normalised smooth L1), hand presence (positives and background crops) and
handedness where labelled. The shared parts are in :mod:`.training`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import epe, pck
from hand_pose_refiner.models.augment import change_appearance, draw_geometry
from hand_pose_refiner.models.base import EpochResult, FineTuneReport, FineTuneSettings, split_dataset
from hand_pose_refiner.models.mediapipe.geometry import (
    crop,
    crop_to_image,
    image_to_crop,
    rois_from_landmarks,
)
from hand_pose_refiner.models.mediapipe.landmark import INPUT_SIZE as CROP_SIZE
from hand_pose_refiner.models.mediapipe.training import (
    MIN_LABELLED,
    LabelledHand,
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
from hand_pose_refiner.skeleton import Handedness

if TYPE_CHECKING:
    from hand_pose_refiner.models.mediapipe.estimator import MediaPipePoseEstimator

NEGATIVE_FRACTION = 0.2  # share of landmark samples that are background crops
LANDMARK_HEADS = ("blocks", "last_expand", "last_depthwise", "handedness", "presence", "landmarks",
                  "world_landmarks")

def _landmark_sample(image: npt.NDArray[np.uint8], hand: LabelledHand, rng: np.random.Generator | None,
                     config: FineTuneSettings) -> tuple[np.ndarray, np.ndarray, float, float]:
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


def _background_sample(image: npt.NDArray[np.uint8], hands: Sequence[LabelledHand],
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


def _landmark_batches(images: list[npt.NDArray[np.uint8]], hands: list[LabelledHand],
                      config: FineTuneSettings,
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
        for crops, points, presence, right in my_batches(batches):
            out = net(crops.to(device))
            loss = _landmark_loss(out.landmarks, out.presence_logit, out.handedness_logit,
                                  points.to(device), presence.to(device), right.to(device))
            total += float(loss) * len(crops)
            count += len(crops)
    return global_mean(total, count)


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
                        config: FineTuneSettings, val_dataset: Sequence[CocoImage] | None) -> FineTuneReport:
    """Retrain the landmark network; returns losses and held-out metrics per epoch."""
    rng = seeded_rng(config)
    train, val = split_dataset(dataset, config, val_dataset)
    hands = labelled_hands(train)
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
    model = training_net(estimator.net)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        estimator.net.train()
        losses = []
        for batch in _landmark_batches(images, hands, config, rng):
            rows, weight = local_rows(len(batch[0]))
            totals = landmark_loss_totals(*batch[1:])
            crops, points, presence, right = (t[rows].to(estimator.device) for t in batch)
            out = model(crops)
            loss = _landmark_loss(out.landmarks, out.presence_logit, out.handedness_logit,
                                  points, presence, right, totals)
            optimiser.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimiser.step()
            losses.append(batch_loss(loss, weight))
        estimator.net.eval()
        metrics = evaluate_estimator(estimator, val, config.pck_alpha)
        metrics["fit_loss"] = _landmark_fit_loss(estimator, fit_batches)
        metrics["seconds"] = time.perf_counter() - started
        epochs.append(EpochResult(epoch, float(np.mean(losses)), metrics,
                                  save_epoch_checkpoint(estimator.save, config, "hand_landmark", epoch)))
    return FineTuneReport(initial_loss, initial, epochs, len(train), len(val))
