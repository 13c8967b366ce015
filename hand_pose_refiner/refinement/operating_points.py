"""One refinement round's models on the judged gloved stills at other thresholds.

The loop evaluates every round at the config's live thresholds. :func:`sweep` replays the stills
with one round's models at other palm detector tile sizes (``mediapipe.detector_tile_size``),
detector score thresholds and hand score floors (``spatial_filter.min_hand_score``) and scores
each setting against the by-eye judgements (:mod:`hand_pose_refiner.refinement.scoring`), to show
what a threshold trades. Each tile size and detector threshold is one model pass; the hand score
floors only filter its cached predictions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.models import HandDetector, PoseEstimator, create_backend
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay import ReplaySettings, replay
from hand_pose_refiner.refinement.round_models import round_weights
from hand_pose_refiner.refinement.run_state import read_state
from hand_pose_refiner.refinement.scoring import VIEWS, Judgements, RoundScore, score_predictions


@dataclass(frozen=True)
class OperatingPoint:
    """One setting of the three thresholds a sweep varies."""

    tile_size: float
    detection_threshold: float
    hand_score: float


def round_models(run: Path, iteration: int | None) -> tuple[int, Path | None, Path | None]:
    """The round to replay (the run's kept round when ``iteration`` is None) and its weight files
    (None for round 0: the config's own models).

    Raises :class:`RefinementStateError` when no round is given and the run has not finished, and
    :class:`FileNotFoundError` when the round has no weights."""
    if iteration is None:
        best = read_state(run, any_format=True).best_iteration
        if best is None:
            raise RefinementStateError(f"{run}: the run has not finished; give the round to replay")
        iteration = int(best)
    if iteration == 0:
        return 0, None, None
    detector, estimator = round_weights(run, iteration)
    for path in (detector, estimator):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (round {iteration} has not been fine-tuned)")
    return iteration, detector, estimator


def setting_config(base: Config, detector: Path | None, estimator: Path | None, tile_size: float,
                   detection_threshold: float, hand_score: float) -> Config:
    """``base`` with the round's weights and one setting of the three thresholds."""
    models = base.models
    if detector is not None and estimator is not None:
        models = replace(models, detector_checkpoint=str(detector), pose_checkpoint=str(estimator))
    models = replace(models, detection_score_threshold=detection_threshold)
    mediapipe = replace(base.mediapipe, detector_tile_size=tile_size)
    spatial_filter = replace(base.spatial_filter, min_hand_score=hand_score)
    return replace(base, models=models, mediapipe=mediapipe, spatial_filter=spatial_filter)


def score_setting(config: Config, models: tuple[HandDetector, PoseEstimator], targets: tuple[InputSpec, ...],
                  work: Path, judgements: Judgements, data: Path) -> RoundScore:
    """Replay the stills with ``config`` and ``models`` (built from it; their predictions cached in
    ``work``, so another hand score floor only filters again) and score them."""
    detector, estimator = models
    out = work / "replay"
    replay(targets, out, config, detector, estimator,
           ReplaySettings(cache_dir=work / "cache", progress=False, overwrite=True))
    return score_predictions(out / "predictions.jsonl", judgements, data)


def live_point(config: Config) -> OperatingPoint:
    """The setting ``config`` itself runs at."""
    return OperatingPoint(config.mediapipe.detector_tile_size, config.models.detection_score_threshold,
                          config.spatial_filter.min_hand_score)


def sweep(base: Config, weights: tuple[Path | None, Path | None], data: Path, judgements: Judgements,
          tile_sizes: Sequence[float], detection_thresholds: Sequence[float],
          hand_scores: Sequence[float]) -> Iterator[tuple[OperatingPoint, RoundScore]]:
    """Each setting of the grid with its score, as it is measured (tile sizes outermost, hand
    score floors innermost); ``weights`` are the round's detector and estimator (None, None: the
    config's own models)."""
    targets = tuple(InputSpec(data / view / "gloved", stills=True) for view in VIEWS)
    with tempfile.TemporaryDirectory(prefix="operating_points_") as folder:
        for tile_size in tile_sizes:
            for threshold in detection_thresholds:
                models = None
                for hand_score in hand_scores:
                    config = setting_config(base, *weights, tile_size, threshold, hand_score)
                    models = models or create_backend(config)  # the floor is no model setting
                    score = score_setting(config, models, targets, Path(folder), judgements, data)
                    yield OperatingPoint(tile_size, threshold, hand_score), score
