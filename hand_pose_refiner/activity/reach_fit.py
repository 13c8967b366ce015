"""Fitting the reach network (phase and time to grasp) on prepared recordings, and the settings
of a reach training run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hand_pose_refiner.activity.reach_data import PreparedSequence
from hand_pose_refiner.activity.reach_features import NUM_FEATURES, PHASE_NAMES, REACH
from hand_pose_refiner.activity.reach_model import ReachModel
from hand_pose_refiner.activity.rtg_dataset import UNLABELLED


@dataclass(frozen=True)
class ReachTrainSettings:
    """How to train the reach model (defaults: about 70 s per 600 recordings on one CPU thread).

    The jitters shift the palm's image position and scale its size per recording: camera
    placement and distance differ between people, and the model must not learn them.
    """

    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    hidden: int = 64
    seed: int = 0
    threads: int = 1
    time_loss_weight: float = 2.0
    position_jitter: float = 0.1
    scale_jitter: float = 0.2
    # The size classifier: L2 strength (as scikit-learn's C: smaller is stronger; 0.3 was best
    # of 0.03..1 leave-one-subject-out, though all were within 0.01) and how many reaches the
    # training people's average counts as in a new person's statistics (1..10 within 0.01).
    size_c: float = 0.3
    size_prior_reaches: float = 3.0


def _batch(
    prepared: Sequence[PreparedSequence], rng: np.random.Generator | None, settings: ReachTrainSettings
) -> tuple[torch.Tensor, ...]:
    length = max(len(p.rows) for p in prepared)
    features = np.zeros((len(prepared), length, NUM_FEATURES), np.float32)
    phase = np.full((len(prepared), length), -100, np.int64)
    time_to_grasp = np.zeros((len(prepared), length), np.float32)
    for i, item in enumerate(prepared):
        count = len(item.rows)
        rows = item.features.copy()
        if rng is not None:  # camera placement and distance differ between people
            tail = 3 * 21
            present = rows[:, tail + 2] > 0
            rows[present, tail : tail + 2] += rng.uniform(-1, 1, 2) * settings.position_jitter
            rows[present, tail + 2] *= np.exp(rng.uniform(-1, 1) * settings.scale_jitter)
        features[i, :count] = rows
        labels = item.phase.astype(np.int64)
        phase[i, :count] = np.where(labels == UNLABELLED, -100, labels)
        time_to_grasp[i, :count] = np.where(labels == REACH, item.time_to_grasp_s, np.nan)
    return torch.from_numpy(features), torch.from_numpy(phase), torch.from_numpy(time_to_grasp)



def fit_network(
    train: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    size_names: Sequence[str],
    log: Callable[[str], None] | None = None,
) -> ReachModel:
    """A reach model whose phase and time-to-grasp network is trained on whole recordings (its
    size classifier still untrained: :func:`~.reach_calibration.fit_size_classifier`)."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, settings.threads))
    rng = np.random.default_rng(settings.seed)
    model = ReachModel(size_names, settings.hidden)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    steps = settings.epochs * int(np.ceil(len(train) / settings.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=steps)
    counts = np.bincount(np.concatenate([p.phase[p.phase != UNLABELLED] for p in train]), minlength=3)
    phase_loss = nn.CrossEntropyLoss(
        weight=torch.tensor(np.sqrt(counts.sum() / np.maximum(counts, 1)), dtype=torch.float32),
        ignore_index=-100,
    )
    model.train()
    for epoch in range(settings.epochs):
        order = rng.permutation(len(train))
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            features, phase, time_to_grasp = _batch(
                [train[i] for i in order[start : start + settings.batch_size]], rng, settings
            )
            phase_logits, predicted_time = model(features)
            reach = torch.isfinite(time_to_grasp)
            loss = phase_loss(phase_logits.reshape(-1, len(PHASE_NAMES)), phase.reshape(-1))
            if reach.any():
                loss = loss + settings.time_loss_weight * nn.functional.smooth_l1_loss(
                    predicted_time[reach], time_to_grasp[reach], beta=0.05
                )
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        if log is not None:
            batches = np.ceil(len(order) / settings.batch_size)
            log(f"epoch {epoch + 1}/{settings.epochs}: loss {total / batches:.4f}")
    return model
