"""Refinement on the gloved glovebox frames, with bare-hand clips and labelled hands as checks.

Runs the ``refine`` loop on ../shared/data/hags_gloved_assembly (side and top view, gloved and
green-screen frames, as stills), evaluates every round on two bare-hand clips (every 5th frame;
not trained on) and on the labelled hands (PCK@0.2), and prints the detection rate of the initial
models and after each round. The other four bare-hand clips (every 6th frame) are anchors: the
initial models' hands on them join every round's training set. CPU-sized: at most 60 images per
input. The run folder is resumable; its report.html has the before/after overlay grids (all
gloved frames, so a person can count false positives).

    .venv/bin/python bench/refine_gloved.py [--out runs/refine_gloved] [--iterations 3] [--search-rounds 1]
        [--config config/glovebox.yaml]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import torch

from hand_pose_refiner.config import load_config
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.refine import LabelledSet, Refinement, RefineSettings
from hand_pose_refiner.refinement.replay import ReplaySettings
from hand_pose_refiner.refinement.report import write_report
from hand_pose_refiner.refinement.run_state import (
    AnchorLabelsResult,
    EvaluateResult,
    PseudoLabelsResult,
    StepResult,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CELL_CONFIG = Path(__file__).resolve().parents[1] / "config" / "glovebox.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/refine_gloved"))
    parser.add_argument("--config", type=Path, default=CELL_CONFIG,
                        help="the cell's config (default: config/glovebox.yaml, as the main job)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--detector-epochs", type=int, default=12)
    parser.add_argument("--detector-learning-rate", type=float, default=3e-4)
    parser.add_argument("--no-anchors", action="store_true", help="train on the pseudo-labels alone")
    parser.add_argument("--search-rounds", type=int, default=0,
                        help="rounds whose pseudo-labels also come from a crop search of every frame")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared CPU: one thread runs far faster than two spinning ones
    logging.basicConfig(level=logging.WARNING)
    hags = args.data / "hags_gloved_assembly"
    targets = tuple(InputSpec(hags / view / kind, stills=True)
                    for kind in ("gloved", "greenscreen") for view in ("side_view", "top_view"))
    clips = args.data / "bare_hand_clips"
    checks = tuple(InputSpec(clips / f"hands{n}.webm", stride=5) for n in (1, 4))
    anchors = () if args.no_anchors else tuple(InputSpec(clips / f"hands{n}.webm", stride=6)
                                               for n in (2, 3, 5, 8))
    labelled = (LabelledSet(args.data / "labelled_hands/onehand10k/test_onehand10k.json"),
                LabelledSet(args.data / "labelled_hands/rhd/test_rhd.json", tip_first=True))
    options = RefineSettings(targets=targets, checks=checks, labelled=labelled, anchors=anchors,
                            iterations=args.iterations, epochs=args.epochs, patience=args.patience,
                            detector_epochs=args.detector_epochs,
                            detector_learning_rate=args.detector_learning_rate,
                            learning_rate=args.learning_rate, search_rounds=args.search_rounds)
    config = load_config(args.config)
    started = time.perf_counter()

    def show(name: str, result: StepResult) -> None:
        elapsed = time.perf_counter() - started
        if isinstance(result, EvaluateResult):
            rates = {Path(i.path).parent.name + "/" + Path(i.path).name: i.detection_rate
                     for i in result.targets.inputs}
            assert result.checks is not None and result.pck is not None
            print(f"[{elapsed:6.0f} s] {name}: gloved side {rates['side_view/gloved']:.3f}, "
                  f"gloved top {rates['top_view/gloved']:.3f}, all targets {result.measure:.3f}, "
                  f"bare-hand checks {result.checks.detection_rate:.3f}, "
                  f"PCK@0.2 {result.pck.pck:.3f}", flush=True)
        elif isinstance(result, (AnchorLabelsResult, PseudoLabelsResult)):
            print(f"[{elapsed:6.0f} s] {name}: {result.replay.accepted_hands} hands", flush=True)
        else:
            print(f"[{elapsed:6.0f} s] {name}: {result.train_hands} hands", flush=True)

    replay_options = ReplaySettings(progress=False)
    state = Refinement(args.out, options, config, replay_options, on_step=show).run()
    report = write_report(args.out, grid_frames=None)
    print(f"best iteration {state.best_iteration}: {state.stopped_because}; report {report}; "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
