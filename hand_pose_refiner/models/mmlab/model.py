"""The base of the OpenMMLab detector and pose estimator: ``fine_tune`` and ``save`` of one network.

It sits above :mod:`.runtime` (configs, checkpoints) and :mod:`.training` (the mmengine loop),
so that neither of those needs the other's caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.models.base import FineTuneReport, FineTuneSettings
from hand_pose_refiner.models.mmlab.runtime import config_text, write_checkpoint


class MMLabModel:
    """``fine_tune`` and ``save`` of an adapter that holds one OpenMMLab network ``net`` of ``kind``
    with its mmengine ``config`` (as ``NetworkWeights`` does for the MediaPipe networks)."""

    kind: str
    net: Any
    config: Any
    device: torch.device

    def to_device(self, device: torch.device) -> None:
        """Run on ``device`` from now on."""
        self.device = device
        self.net = self.net.to(device)

    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneSettings | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        # training imports mmengine, which a model created for inference alone need not load.
        from hand_pose_refiner.models.mmlab.training import fine_tune

        return fine_tune(self, self.kind, dataset, config or FineTuneSettings(), val_dataset)

    def save(self, path: str | Path) -> Path:
        return write_checkpoint(path, self.kind, self.net, config_text(self.config), self.net.dataset_meta)
