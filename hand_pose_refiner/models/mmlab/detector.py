"""An mmdet box detector (the paper's Cascade R-CNN by default) behind :class:`HandDetector`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.models.base import (
    Detections,
    HandDetector,
    resolve_device,
    settings_key,
)
from hand_pose_refiner.models.mediapipe.detector import check_rgb
from hand_pose_refiner.models.mmlab.model import MMLabModel
from hand_pose_refiner.models.mmlab.runtime import load_network, require_mmlab

KIND = "detector"
_FILE_LOADERS = ("LoadImageFromFile", "mmdet.LoadImageFromFile", "mmcv.LoadImageFromFile")
_ANNOTATION_LOADERS = ("LoadAnnotations", "mmdet.LoadAnnotations")


def inference_pipeline(config: Any) -> list[dict[str, Any]]:
    """The config's test pipeline, reading arrays instead of files and no annotations."""
    steps = config.get("test_pipeline") or config.test_dataloader.dataset.pipeline
    pipeline = []
    for step in steps:
        step = dict(step)
        if step["type"] in _ANNOTATION_LOADERS:
            continue
        if step["type"] in _FILE_LOADERS:
            step = {"type": "LoadImageFromNDArray"}
        pipeline.append(step)
    return pipeline


class MMLabHandDetector(MMLabModel, HandDetector):
    """A one-class ('hand') mmdet detector: the paper's Cascade R-CNN, or the user's own.

    ``checkpoint`` is a file written by :meth:`save` (it carries its config) or an OpenMMLab
    ``.pth``; ``config`` an mmengine config file or a built-in name (``paper``, ``small``), empty
    for the checkpoint's own config. Without a checkpoint the model starts from random weights.
    """

    kind = KIND

    def __init__(self, checkpoint: str | Path | None = None, config: str = "", device: str = "auto",
                 score_threshold: float = 0.5, batch_size: int = 8, max_hands: int | None = None) -> None:
        require_mmlab()
        self.device = resolve_device(device)
        self.config_reference = config
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.max_hands = max_hands
        self.load(checkpoint)

    def load(self, path: str | Path | None) -> None:
        self.config, self.source, net, self.pipeline = load_network(KIND, self.config_reference, path,
                                                                    inference_pipeline)
        net.dataset_meta = {"classes": ("hand",)}  # type: ignore[assignment]  # an mmdet model attribute
        self.net = net.to(self.device).eval()
        self.checkpoint = Path(path) if path else None
        self.name = f"mmlab/{type(net).__name__}"

    def prediction_key(self) -> list[str]:
        return settings_key({"score_threshold": self.score_threshold, "max_hands": self.max_hands})

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        from mmengine.dataset import pseudo_collate

        results: list[Detections] = []
        for index, image in enumerate(images):
            check_rgb(image, index)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            # OpenMMLab pipelines take BGR arrays (the data preprocessor turns them back into RGB).
            batch = pseudo_collate([self.pipeline({"img": np.ascontiguousarray(image[..., ::-1]),
                                                   "img_id": start + offset})
                                    for offset, image in enumerate(chunk)])
            with torch.inference_mode():
                samples = self.net.test_step(batch)
            results.extend(self._detections(sample, image)
                           for sample, image in zip(samples, chunk, strict=True))
        return results

    def _detections(self, sample: Any, image: npt.NDArray[np.uint8]) -> Detections:
        found = sample.pred_instances
        scores = found.scores.detach().cpu().numpy().astype(np.float32)
        boxes = found.bboxes.detach().cpu().numpy().astype(np.float32)
        keep = (scores >= self.score_threshold) & (found.labels.detach().cpu().numpy() == 0)
        order = np.argsort(-scores[keep], kind="stable")
        if self.max_hands is not None:
            order = order[:self.max_hands]
        height, width = image.shape[:2]
        return Detections(boxes=boxes[keep][order], scores=scores[keep][order],
                          keypoints=np.zeros((len(order), 0, 2), np.float32),
                          image_width=width, image_height=height)
