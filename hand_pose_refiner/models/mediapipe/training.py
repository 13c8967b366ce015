"""What the MediaPipe networks' fine-tuning loops share: labelled hands, seeds, trainable
parameters, the data-parallel share of a batch (``models/distributed.py``: every process draws the
same global batches and trains on its share; rank 0 alone writes checkpoints) and the per-epoch
checkpoint.

The loops: :mod:`.landmark_training` (the landmark network) and :mod:`.palm_training` (the palm
detector). Targets come from the 21 labelled keypoints alone, so any COCO hand dataset (or the
refined labels this project produces) can retrain both networks; each epoch writes a safetensors
checkpoint (atomically) and evaluates a held-out split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.models.base import FineTuneSettings
from hand_pose_refiner.models.distributed import current

if TYPE_CHECKING:
    pass

MIN_LABELLED = 8  # hands with fewer labelled keypoints are not used for training


@dataclass
class LabelledHand:
    image: int
    keypoints: npt.NDArray[np.float32]  # (21, 2), NaN unlabelled
    handedness: int


def labelled_hands(images: Sequence[CocoImage]) -> list[LabelledHand]:
    hands = []
    for index, item in enumerate(images):
        for k in range(len(item.hands)):
            points = item.hands.keypoints[k]
            if np.isfinite(points).all(axis=1).sum() >= MIN_LABELLED:
                hands.append(LabelledHand(index, points, int(item.hands.handedness[k])))
    return hands


def seeded_rng(config: FineTuneSettings) -> np.random.Generator:
    torch.manual_seed(config.seed)
    return np.random.default_rng(config.seed)


def trainable_parameters(net: torch.nn.Module, heads: tuple[str, ...],
                         freeze_backbone: bool) -> list[torch.nn.Parameter]:
    """All parameters, or only those of the top-level modules named in ``heads``."""
    for name, parameter in net.named_parameters():
        parameter.requires_grad_(not freeze_backbone or name.split(".")[0] in heads)
    return [p for p in net.parameters() if p.requires_grad]


def local_rows(count: int) -> tuple[slice, float]:
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


def global_mean(total: float, count: int) -> float:
    """Mean over every rank's share (``total`` summed over ``count`` rows here)."""
    parallel = current()
    rows = float(count)
    if parallel is not None:
        total, rows = parallel.all_sum([total, rows])
    return total / max(rows, 1.0)


def batch_loss(loss: torch.Tensor, factor: float) -> float:
    """The whole global batch's loss: the sum of the ranks' shares."""
    parallel = current()
    if parallel is None:
        return float(loss.detach())
    return parallel.all_sum([float(loss.detach()) * factor / parallel.world_size])[0]


def training_net(net: torch.nn.Module) -> torch.nn.Module:
    parallel = current()
    return parallel.wrap(net) if parallel is not None else net


def my_batches(batches: list) -> list:
    """This rank's share of whole batches (for the fit loss, a plain average over batches)."""
    parallel = current()
    return batches if parallel is None else batches[parallel.rank::parallel.world_size]




def save_epoch_checkpoint(save: Callable[[Path], Path], config: FineTuneSettings, name: str,
                epoch: int) -> Path | None:
    if config.checkpoint_dir is None:
        return None
    path = Path(config.checkpoint_dir) / f"{name}-epoch{epoch:03d}.safetensors"
    parallel = current()
    if parallel is None or parallel.is_main:  # one writer; every rank holds the same weights
        save(path)
    return path
