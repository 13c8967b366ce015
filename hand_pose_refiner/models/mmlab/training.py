"""Fine-tuning the OpenMMLab models with mmengine's Runner on COCO hand data.

The images handed to :func:`fine_tune` (for ``refine``: the pseudo-labels ``replay`` wrote) are
written as one COCO keypoint file in a scratch folder; the detector trains on it as mmdet's
``CocoDataset`` with the one class 'hand', the pose model as mmpose's top-down ``CocoDataset``
with the 21 keypoints. The Runner trains the adapter's own network in place, so the adapter
infers with the new weights right away; a hook records the loss of every iteration, evaluates the
held-out images after every epoch and writes a checkpoint there when asked.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mmengine.hooks import Hook

from hand_pose_refiner.atomic import atomic_write_json
from hand_pose_refiner.coco import CocoImage, build_coco
from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import detection_precision_recall, epe, pck
from hand_pose_refiner.models.base import EpochResult, FineTuneReport, FineTuneSettings, split_dataset
from hand_pose_refiner.models.mmlab.configs import hand_metainfo
from hand_pose_refiner.models.mmlab.runtime import KINDS, scope


def train_pipeline(config: Any) -> list[dict[str, Any]]:
    return [dict(step) for step in (config.get("train_pipeline") or config.train_dataloader.dataset.pipeline)]


def dataset_config(kind: str, annotations: Path, config: Any) -> dict[str, Any]:
    """The mmdet or mmpose COCO dataset over ``annotations`` (absolute image paths inside)."""
    common = dict(data_root="", ann_file=str(annotations), data_prefix=dict(img=""),
                  pipeline=train_pipeline(config))
    if kind == "detector":
        return dict(type="CocoDataset", metainfo=dict(classes=("hand",)),
                    filter_cfg=dict(filter_empty_gt=True, min_size=1), **common)
    return dict(type="CocoDataset", data_mode="topdown", metainfo=hand_metainfo(), **common)


def evaluate(model: Any, kind: str, images: Sequence[CocoImage], alpha: float) -> dict[str, float]:
    """Held-out metrics: box recall and precision (IoU 0.5) of the detector; PCK@alpha and the
    end-point error of the pose model on the labelled boxes."""
    hands = [(item, read_rgb(item.path)) for item in images if len(item.hands)]
    if not hands:
        return {"detection_rate": math.nan} if kind == "detector" else {"pck": math.nan, "epe": math.nan}
    model.net.eval()
    if kind == "detector":
        found = model.detect([image for _, image in hands])
        precision, recall = detection_precision_recall([f.boxes for f in found],
                                                       [item.hands.boxes for item, _ in hands])
        return {"detection_rate": recall, "precision": precision}
    predicted, target, boxes = [], [], []
    for item, image in hands:
        keypoints, _ = model.predict_boxes(image, item.hands.boxes)
        predicted.append(keypoints)
        target.append(item.hands.keypoints)
        boxes.append(item.hands.boxes)
    pred, true = np.concatenate(predicted), np.concatenate(target)
    return {"pck": pck(pred, true, np.concatenate(boxes), alpha), "epe": epe(pred, true)}


class EpochRecorder(Hook):
    """Losses per iteration, held-out metrics and an optional checkpoint after every epoch."""

    priority = "LOW"

    def __init__(self, model: Any, kind: str, val: Sequence[CocoImage], config: FineTuneSettings) -> None:
        self.model, self.kind, self.val, self.config = model, kind, val, config
        self.first_loss: float | None = None
        self.losses: list[float] = []
        self.epochs: list[EpochResult] = []
        self.started = time.perf_counter()

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.config.freeze_backbone:
            self.model.net.backbone.eval()  # frozen: keep its normalisation statistics too

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        value = outputs.get("loss") if outputs else None
        detach = getattr(value, "detach", None)  # a tensor, a number or nothing
        loss = float(detach()) if detach is not None else float(value or math.nan)
        if self.first_loss is None:
            self.first_loss = loss  # computed before the first update: the starting loss
        self.losses.append(loss)

    def after_train_epoch(self, runner: Any) -> None:
        epoch = runner.epoch + 1
        metrics = evaluate(self.model, self.kind, self.val, self.config.pck_alpha)
        metrics["seconds"] = time.perf_counter() - self.started
        checkpoint = None
        if self.config.checkpoint_dir is not None:
            name = "detector" if self.kind == "detector" else "pose"
            checkpoint = self.model.save(Path(self.config.checkpoint_dir)
                                         / f"mmlab_{name}-epoch{epoch:03d}.safetensors")
        self.epochs.append(EpochResult(epoch, float(np.mean(self.losses)) if self.losses else math.nan,
                                       metrics, checkpoint))
        self.losses = []
        self.started = time.perf_counter()


def fine_tune(model: Any, kind: str, dataset: Sequence[CocoImage], config: FineTuneSettings,
              val_dataset: Sequence[CocoImage] | None) -> FineTuneReport:
    """Train ``model`` (an mmlab adapter) in place for ``config.epochs`` epochs on ``dataset``."""
    from mmengine.runner import Runner

    train, val = split_dataset(dataset, config, val_dataset)
    usable = [item for item in train if len(item.hands)]
    if not usable:
        raise ModelError(f"no labelled hands among the {len(train)} training images")
    initial_metrics = evaluate(model, kind, val, config.pck_alpha)
    recorder = EpochRecorder(model, kind, val, config)
    # mmengine sets these process-wide: keep what the process has.
    threads = cv2.getNumThreads()
    start_method = multiprocessing.get_start_method(allow_none=True) or "fork"
    with tempfile.TemporaryDirectory(prefix="hand_pose_refiner_mmlab_") as folder:
        annotations = Path(folder) / "train.json"
        atomic_write_json(annotations, build_coco((str(item.path.resolve()), item.hands) for item in usable))
        if config.freeze_backbone:
            for parameter in model.net.backbone.parameters():
                parameter.requires_grad_(False)
        try:
            with scope(kind):
                runner = Runner(
                    model=model.net, work_dir=folder, experiment_name=f"{kind}_{uuid.uuid4().hex[:8]}",
                    train_dataloader=dict(batch_size=config.batch_size, num_workers=0,
                                          persistent_workers=False,
                                          sampler=dict(type="DefaultSampler", shuffle=True),
                                          dataset=dataset_config(kind, annotations, model.config)),
                    train_cfg=dict(by_epoch=True, max_epochs=config.epochs),
                    optim_wrapper=dict(optimizer=dict(type="AdamW", lr=config.learning_rate,
                                                      weight_decay=config.weight_decay),
                                       clip_grad=dict(max_norm=10.0)),
                    default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=10**6)),
                    custom_hooks=[recorder], default_scope=KINDS[kind],
                    randomness=dict(seed=config.seed), log_level="WARNING",
                    env_cfg=dict(cudnn_benchmark=False,
                                 mp_cfg=dict(mp_start_method=start_method, opencv_num_threads=threads),
                                 dist_cfg=dict(backend="gloo")))
                # pycocotools prints its index building to stdout, into the CLI's own output.
                with contextlib.redirect_stdout(io.StringIO()):
                    runner.train()
        finally:
            for parameter in model.net.backbone.parameters():
                parameter.requires_grad_(True)
            model.net.to(model.device).eval()
    return FineTuneReport(initial_loss=recorder.first_loss if recorder.first_loss is not None else math.nan,
                          initial_metrics=initial_metrics, epochs=recorder.epochs,
                          train_images=len(usable), val_images=len(val))
