"""The model stage of a replay: detector then pose estimator over a shard's stored frames, with
the prediction cache around it (stored once per input and model, loaded when present)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models.base import HandDetector, PoseEstimator
from hand_pose_refiner.refinement.cache import FrameStore, PredictionCache, StoredFrame
from hand_pose_refiner.refinement.progress import Progress


@dataclass
class Predictions:
    """One shard's raw hands (one FrameHands per stored frame) and where they came from."""

    hands: list[FrameHands]
    cached: bool  # loaded from the cache, the models did not run
    seconds: float = 0.0  # time the models took (0 when cached)


def run_models(detector: HandDetector, estimator: PoseEstimator, frames: list[StoredFrame],
               batch_size: int, progress: Callable[[int], None] | None = None) -> Iterator[FrameHands]:
    """Detector then pose estimator over stored frames, in batches; one FrameHands per frame."""
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        images = [frame.rgb() for frame in chunk]
        stamps = [frame.stamp_ns for frame in chunk]
        for frame, hands in zip(chunk, estimator.estimate(images, detector.detect(images), stamps),
                                strict=True):
            hands.frame_id = frame.frame_id
            yield hands
        if progress is not None:
            progress(start + len(chunk))


def predict(store: FrameStore, frames: list[StoredFrame], detector: HandDetector, estimator: PoseEstimator,
            cache: PredictionCache, key: str, batch_size: int, progress: bool) -> Predictions:
    """The raw hands of a store's ``frames``: from the cache under ``key``, else run and stored."""
    raw = cache.load(store, key)
    if raw is not None:
        return Predictions(raw, cached=True)
    display = Progress(f"models {store.spec.path.name}", len(frames), progress)
    began = time.perf_counter()
    raw = list(run_models(detector, estimator, frames, batch_size, display))
    seconds = time.perf_counter() - began
    display.close()
    cache.save(store, key, raw)
    return Predictions(raw, cached=False, seconds=seconds)
