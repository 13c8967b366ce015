"""Training and evaluating the activity model on labelled windows (CPU is enough).

Augmentation acts on the normalised features, so it is cheap and keeps them consistent: a small
in-plane rotation and scaling (the camera is never exactly where it was in training), and
dropping whole keypoints (what the filters leave masked).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hand_pose_refiner.activity.dataset import WindowSet
from hand_pose_refiner.activity.model import DEFAULT_CHANNELS, DEFAULT_STRIDES, ActivityModel
from hand_pose_refiner.atomic import atomic_write_text
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ModelError


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and augmentation settings."""

    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.05
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None = torch's default
    augment: bool = True
    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    keypoint_dropout: float = 0.05
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    strides: tuple[int, ...] = DEFAULT_STRIDES
    temporal_kernel: int = 9
    dropout: float = 0.1


@dataclass
class TrainHistory:
    """Mean training loss and seconds per epoch."""

    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def augment(batch: Tensor, settings: TrainSettings, generator: torch.Generator) -> Tensor:
    """Rotate and scale the (x, y) channel pairs, and drop keypoints, per window."""
    n, _, t, v = batch.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(settings.max_rotation_deg)
    low, high = settings.scale_range
    scale = low + torch.rand(n, generator=generator) * (high - low)
    cos, sin = (torch.cos(angle) * scale).view(n, 1, 1), (torch.sin(angle) * scale).view(n, 1, 1)
    out = batch.clone()
    for x_channel in (0, 2, 4):
        x, y = batch[:, x_channel], batch[:, x_channel + 1]
        out[:, x_channel] = cos * x - sin * y
        out[:, x_channel + 1] = sin * x + cos * y
    if settings.keypoint_dropout > 0:
        keep = (torch.rand(n, 1, t, v, generator=generator) >= settings.keypoint_dropout).to(batch.dtype)
        out = out * keep
    return out


def train_activity_model(train: WindowSet, config: ActivityConfig, settings: TrainSettings = TrainSettings(),
                         log: Callable[[str], None] | None = print) -> tuple[ActivityModel, TrainHistory]:
    """Train a fresh model for ``config``'s classes on ``train``; returns it in evaluation mode."""
    if tuple(train.class_names) != tuple(config.class_names):
        raise ModelError(f"the windows are labelled with {list(train.class_names)}, the configuration "
                         f"asks for {list(config.class_names)}")
    if len(train) == 0:
        raise ModelError("no labelled windows to train on (check the annotations and sources)")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = ActivityModel.for_config(config, channels=settings.channels, strides=settings.strides,
                                     temporal_kernel=settings.temporal_kernel, dropout=settings.dropout)
    features = torch.from_numpy(train.features)
    labels = torch.from_numpy(train.labels)
    counts = torch.bincount(labels, minlength=model.num_classes).clamp(min=1).to(torch.float32)
    weights = (counts.sum() / counts) / model.num_classes  # classes count equally
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=settings.label_smoothing)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / settings.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate,
                                                   total_steps=settings.epochs * steps_per_epoch)
    history = TrainHistory()
    model.train()
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=generator)
        total, seen = 0.0, 0
        for first in range(0, len(train), settings.batch_size):
            index = order[first:first + settings.batch_size]
            if index.numel() < 2:  # batch norm needs two samples
                continue
            batch = features[index]
            if settings.augment:
                batch = augment(batch, settings, generator)
            loss = loss_fn(model(batch), labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.detach().item() * index.numel()
            seen += index.numel()
        history.losses.append(total / max(seen, 1))
        history.seconds.append(time.perf_counter() - started)
        if log is not None:
            log(f"epoch {epoch + 1}/{settings.epochs}: loss {history.losses[-1]:.4f} "
                f"({history.seconds[-1]:.1f} s)")
    return model.eval(), history


@dataclass(frozen=True)
class Evaluation:
    """Top-1 accuracy, recall per class and the confusion matrix (rows: truth, columns: predicted)."""

    class_names: tuple[str, ...]
    confusion: np.ndarray
    top1: float
    per_class_recall: dict[str, float]
    windows: int

    def as_dict(self) -> dict[str, object]:
        return {"windows": self.windows, "top1": self.top1, "per_class_recall": self.per_class_recall,
                "class_names": list(self.class_names), "confusion": self.confusion.tolist()}

    def summary(self) -> str:
        recall = ", ".join(f"{name} {value:.3f}" for name, value in self.per_class_recall.items())
        return f"top-1 {self.top1:.3f} on {self.windows} windows; recall per class: {recall}"


def predict(model: ActivityModel, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, K)`` of a feature array, in batches."""
    if len(features) == 0:
        return np.zeros((0, model.num_classes), np.float32)
    return np.concatenate([model.predict_proba(features[i:i + batch_size])
                           for i in range(0, len(features), batch_size)])


def evaluate(model: ActivityModel, windows: WindowSet) -> Evaluation:
    """Evaluate on labelled windows (classes must match the model's)."""
    if tuple(windows.class_names) != model.class_names:
        raise ModelError(f"the windows are labelled with {list(windows.class_names)}, the model "
                         f"predicts {list(model.class_names)}")
    predicted = predict(model, windows.features).argmax(axis=1) if len(windows) else np.zeros(0, int)
    return evaluation_from_predictions(windows.labels, predicted, model.class_names)


def evaluation_from_predictions(truth: np.ndarray, predicted: np.ndarray,
                                class_names: Sequence[str]) -> Evaluation:
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    totals = confusion.sum(axis=1)
    recall = {name: float(confusion[i, i] / totals[i]) if totals[i] else float("nan")
              for i, name in enumerate(class_names)}
    count = int(confusion.sum())
    top1 = float(np.trace(confusion) / count) if count else float("nan")
    return Evaluation(tuple(class_names), confusion, top1, recall, count)


def plot_confusion(evaluation: Evaluation, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix of an evaluation as a PNG (counts written in the cells)."""
    return plot_confusion_matrix(evaluation.confusion, evaluation.class_names, path,
                                 title or f"top-1 {evaluation.top1:.3f} ({evaluation.windows} windows)")


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str) -> Path:
    """Row-normalised confusion matrix (rows: truth) as a PNG, with the counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    k = len(class_names)
    figure, axes = plt.subplots(figsize=(1.1 * k + 2.5, 1.0 * k + 2.0))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(k), class_names, rotation=45, ha="right")
    axes.set_yticks(range(k), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            axes.text(j, i, str(confusion[i, j]), ha="center", va="center",
                      color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, label="recall")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_json(data: object, path: str | Path) -> Path:
    """Write a metrics report (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
