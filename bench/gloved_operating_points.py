"""True and false hands of one refinement round's models on the gloved stills, at other thresholds.

The loop evaluates every round at the cell config's live thresholds. This replays the 56 gloved
glovebox stills with one round's models (the kept round by default) at other detector score
thresholds, hand score floors (``spatial_filter.min_hand_score``, the detector score times the
landmark network's presence) and detector tile sizes, and scores each setting against the by-eye
judgements like ``score_gloved.py``: the frames with a true hand and those with a false one. It
shows what a threshold trades, which one number per round cannot. Each tile size and detector
threshold is one model pass over the stills (about 30 s on 2 CPU threads); the hand score
floors re-filter its cached predictions.

Settings whose accepted hands nobody has judged are listed: look at them and add them to
``bench/data/gloved_stills_judgements.json`` before reading the counts.

    .venv/bin/python bench/gloved_operating_points.py runs/gloved [--round K] [--config config/glovebox.yaml]
        [--detection-thresholds 0.5 0.4 0.3] [--hand-scores 0.5 0.4 0.3] [--tile-sizes 0.5 0.35]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run the checkout's code
sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_gloved import DATA, JUDGEMENTS, VIEWS, RoundScore, counts, score_predictions

from hand_pose_refiner.config import Config, load_config
from hand_pose_refiner.models import HandDetector, PoseEstimator, create_backend
from hand_pose_refiner.refinement.inputs import InputSpec
from hand_pose_refiner.refinement.refine import round_weights
from hand_pose_refiner.refinement.replay import ReplayOptions, replay

CELL_CONFIG = Path(__file__).resolve().parents[1] / "config" / "glovebox.yaml"


def round_models(run: Path, iteration: int | None) -> tuple[int, Path | None, Path | None]:
    """The round to replay (the run's kept round when ``iteration`` is None) and its weight files
    (None for round 0: the config's own models)."""
    if iteration is None:
        state = json.loads((run / "state.json").read_text())
        if state.get("best_iteration") is None:
            sys.exit(f"{run}: the run has not finished; give --round")
        iteration = int(state["best_iteration"])
    if iteration == 0:
        return 0, None, None
    detector, estimator = round_weights(run, iteration)
    for path in (detector, estimator):
        if not path.is_file():
            sys.exit(f"{path}: missing (round {iteration} has not been fine-tuned)")
    return iteration, detector, estimator


def setting_config(base: Config, detector: Path | None, estimator: Path | None, tile_size: float,
                   detection_threshold: float, hand_score: float) -> Config:
    """``base`` with the round's weights and one setting of the three thresholds."""
    models = base.models
    if detector is not None and estimator is not None:
        models = replace(models, detector_checkpoint=str(detector), pose_checkpoint=str(estimator))
    models = replace(models, detector_tile_size=tile_size, detection_score_threshold=detection_threshold)
    spatial_filter = replace(base.spatial_filter, min_hand_score=hand_score)
    return replace(base, models=models, spatial_filter=spatial_filter)


def score_setting(config: Config, models: tuple[HandDetector, PoseEstimator], targets: tuple[InputSpec, ...],
                  work: Path, judgements: dict, data: Path) -> RoundScore:
    """Replay the stills with ``config`` and ``models`` (built from it; their predictions cached in
    ``work``, so another hand score floor only filters again) and score them."""
    detector, estimator = models
    out = work / "replay"
    replay(targets, out, config, detector, estimator,
           ReplayOptions(cache_dir=work / "cache", progress=False, overwrite=True))
    return score_predictions(out / "predictions.jsonl", judgements, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a refine run folder")
    parser.add_argument("--round", type=int, default=None, help="the round whose models to replay "
                        "(default: the run's kept round; 0: the config's initial models)")
    parser.add_argument("--config", type=Path, default=CELL_CONFIG,
                        help="the run's config (default: config/glovebox.yaml, as the main job)")
    parser.add_argument("--data", type=Path, default=DATA, help="the hags_gloved_assembly folder")
    parser.add_argument("--detection-thresholds", type=float, nargs="+", default=[0.5, 0.4, 0.3])
    parser.add_argument("--hand-scores", type=float, nargs="+", default=[0.5, 0.4, 0.3])
    parser.add_argument("--tile-sizes", type=float, nargs="+", default=None,
                        help="models.detector_tile_size values (default: the config's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)  # the filters log each rule once per replay
    iteration, detector, estimator = round_models(args.run, args.round)
    base = load_config(args.config)
    tile_sizes = args.tile_sizes or [base.models.detector_tile_size]
    targets = tuple(InputSpec(args.data / view / "gloved", stills=True) for view in VIEWS)
    judgements = json.loads(JUDGEMENTS.read_text())["images"]
    live = (base.models.detector_tile_size, base.models.detection_score_threshold,
            base.spatial_filter.min_hand_score)
    print(f"round {iteration} of {args.run}; * marks the config's own setting")
    print("tile  detector  hand score   true (side+top)     false (of them without a true hand)  unjudged")
    unjudged: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="operating_points_") as folder:
        for tile_size in tile_sizes:
            for threshold in args.detection_thresholds:
                models = None
                for hand_score in args.hand_scores:
                    config = setting_config(base, detector, estimator, tile_size, threshold, hand_score)
                    models = models or create_backend(config.models)  # the floor is no model setting
                    score = score_setting(config, models, targets, Path(folder), judgements, args.data)
                    mark = "*" if (tile_size, threshold, hand_score) == live else " "
                    setting = f"{tile_size:4.2f}{mark} {threshold:7.2f}  {hand_score:9.2f}"
                    print(f"{setting}   {counts(score)}", flush=True)
                    unjudged.update(score.unjudged)
    for hand in sorted(unjudged):
        print(f"unjudged: {hand}")


if __name__ == "__main__":
    main()
