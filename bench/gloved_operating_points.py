"""True and false hands of one refinement round's models on the gloved stills, at other thresholds.

The loop evaluates every round at the cell config's live thresholds. This replays the 56 gloved
glovebox stills with one round's models (the kept round by default) at other detector score
thresholds, hand score floors (``spatial_filter.min_hand_score``, the detector score times the
landmark network's presence) and detector tile sizes, and scores each setting against the by-eye
judgements like ``score_gloved.py``: the frames with a true hand and those with a false one. It
shows what a threshold trades, which one number per round cannot. Each tile size and detector
threshold is one model pass over the stills (about 30 s on 2 CPU threads); the hand score
floors re-filter its cached predictions. The sweep is :mod:`hand_pose_refiner.refinement.operating_points`.

Settings whose accepted hands nobody has judged are listed: look at them and add them to
``bench/data/gloved_stills_judgements.json`` before reading the counts.

    .venv/bin/python bench/gloved_operating_points.py runs/gloved [--round K] [--config config/glovebox.yaml]
        [--detection-thresholds 0.5 0.4 0.3] [--hand-scores 0.5 0.4 0.3] [--tile-sizes 0.5 0.35]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import torch

from hand_pose_refiner.config import load_config
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.refinement.operating_points import live_point, round_models, sweep
from hand_pose_refiner.refinement.scoring import load_judgements

JUDGEMENTS = Path(__file__).resolve().parent / "data" / "gloved_stills_judgements.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hags_gloved_assembly"
CELL_CONFIG = Path(__file__).resolve().parents[1] / "config" / "glovebox.yaml"


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
                        help="mediapipe.detector_tile_size values (default: the config's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)  # the filters log each rule once per replay
    try:
        iteration, detector, estimator = round_models(args.run, args.round)
    except (RefinementStateError, FileNotFoundError) as err:
        sys.exit(str(err))
    base = load_config(args.config)
    tile_sizes = args.tile_sizes or [base.mediapipe.detector_tile_size]
    live = live_point(base)
    print(f"round {iteration} of {args.run}; * marks the config's own setting")
    print("tile  detector  hand score   true (side+top)     false (of them without a true hand)  unjudged")
    unjudged: set[str] = set()
    for point, score in sweep(base, (detector, estimator), args.data, load_judgements(JUDGEMENTS),
                              tile_sizes, args.detection_thresholds, args.hand_scores):
        mark = "*" if point == live else " "
        setting = f"{point.tile_size:4.2f}{mark} {point.detection_threshold:7.2f}  {point.hand_score:9.2f}"
        print(f"{setting}   {score.table_row()}", flush=True)
        unjudged.update(score.unjudged)
    for hand in sorted(unjudged):
        print(f"unjudged: {hand}")


if __name__ == "__main__":
    main()
