"""Fine-tunes both networks on labelled hands, one process or data-parallel under torchrun.

Usage: torchrun --nproc-per-node N test/ddp_fine_tune.py COCO OUT_DIR   (or plain python, N = 1)
Rank 0 writes OUT_DIR/report.json (per-batch and per-epoch losses, fit losses, the global batch
size) and OUT_DIR/estimator.safetensors; each epoch's checkpoints go to OUT_DIR/checkpoints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import FineTuneSettings
from hand_pose_refiner.models.distributed import init_from_env, leave

EPOCHS = 3
GLOBAL_BATCH = 8


def main(coco: Path, out: Path) -> None:
    torch.set_num_threads(1)
    parallel = init_from_env("cpu")
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    images = load_coco(coco)
    config = FineTuneSettings(epochs=EPOCHS, batch_size=GLOBAL_BATCH, learning_rate=5e-4, seed=3,
                            samples_per_image=5, checkpoint_dir=out / "checkpoints")
    reports = {"estimator": estimator.fine_tune(images, config, val_dataset=images[:1]),
               "detector": detector.fine_tune(images, config, val_dataset=images[:1])}
    if parallel is None or parallel.is_main:
        estimator.save(out / "estimator.safetensors")
        curves = {name: {"initial_loss": r.initial_loss, "train_loss": [e.train_loss for e in r.epochs],
                         "fit_loss": [e.metrics["fit_loss"] for e in r.epochs]}
                  for name, r in reports.items()}
        (out / "report.json").write_text(json.dumps({
            "world_size": 1 if parallel is None else parallel.world_size, "global_batch": GLOBAL_BATCH,
            **curves}))
    if parallel is not None:
        leave(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
