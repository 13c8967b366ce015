"""Reach recognition on the real reach-to-grasp recordings: leave-one-subject-out figures and cost.

Every recording goes through the live filter chain (online mode), then the reach model; one model
is trained per held-out participant (8 folds). Prints, per fold and as the mean of the folds:

* per-frame phase macro-F1 (idle / reach / grasp-and-move);             goal >= 0.85
* reach-onset detection: median delay after the labelled onset (ms),  goal <= 100 ms,
  and false onsets per sequence;                                       goal <= 0.05
* time to grasp: median absolute error (ms) at 50 % of the reach;
* grasp size top-1 at the end of the reach (the size probabilities at the last frame at or before
  the labelled reach end; the held-out person's size statistics come only from the reach ends the
  model itself detected in their earlier recordings), and by fraction of the reach seen;
                                                                       goal >= 0.75
* size calibration: of the reach ends scored with confidence >= 0.8, how many are right, and
  how many reach ends that is (coverage);
* inference cost per pose of the online recogniser (features + one streamed network step, one
  torch thread, a real recording);                                    goal < 2 ms

    .venv/bin/python bench/bench_reach.py [--data ../shared/data/hand_actions/rtg_object_size]
        [--epochs 20] [--participants P1 P2 ...] [--out runs/bench_reach] [--jobs N]

Writes metrics.json and the PNG plots to --out (as ``hand-pose-refiner eval-activity --rtg``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np
import torch

from hand_pose_refiner.activity.reach import ReachRecognizer
from hand_pose_refiner.activity.reach_cross_validation import leave_one_subject_out
from hand_pose_refiner.activity.reach_data import prepare_sequences
from hand_pose_refiner.activity.reach_evaluation import FRACTIONS
from hand_pose_refiner.activity.reach_features import PHASE_NAMES
from hand_pose_refiner.activity.reach_fit import ReachTrainSettings
from hand_pose_refiner.activity.reach_plots import plot_size_by_fraction
from hand_pose_refiner.activity.reach_training import train_reach_model
from hand_pose_refiner.activity.rtg_dataset import SIZE_NAMES, StampCounts, load_rtg_dataset
from hand_pose_refiner.activity.training import plot_confusion_matrix, write_json
from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hand_actions" / "rtg_object_size"


def time_online(sequences: list, model: object, repeats: int = 3) -> tuple[float, float]:
    """Median and 95th percentile milliseconds per pose of ``ReachRecognizer.push`` (filters excluded)."""
    torch.set_num_threads(1)
    config = Config()
    filtered = []
    for sequence in sequences:
        pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
        filtered.append([out for _, frame in sequence.frames() for out in pipeline.push(frame) if len(out)])
    costs = []
    for _ in range(repeats):
        for frames in filtered:
            recognizer = ReachRecognizer(model)
            for frame in frames:
                started = time.perf_counter()
                recognizer.push(frame)
                costs.append(time.perf_counter() - started)
    costs_ms = np.array(costs[len(costs) // repeats:]) * 1e3  # the first round warms up
    return float(np.median(costs_ms)), float(np.percentile(costs_ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--participants", nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_reach"))
    parser.add_argument("--jobs", type=int, default=1, help="processes for filtering and folds")
    args = parser.parse_args()
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)

    sequences = load_rtg_dataset(args.data, args.participants)
    counts = sum((s.stamp_counts for s in sequences), StampCounts())
    print(f"{len(sequences)} sequences, {sum(len(s) for s in sequences)} frames; stamps: {counts.repeated} "
          f"repeated, {counts.corrupt} corrupt (frames skipped), {counts.gaps} gaps > 50 ms (bridged)")
    started = time.perf_counter()
    prepared = prepare_sequences(sequences, Config(), jobs=args.jobs)
    frames = sum(len(s) for s in sequences)
    elapsed = time.perf_counter() - started
    print(f"online filters + features: {elapsed:.0f} s ({frames / elapsed:.0f} frames/s)")

    settings = ReachTrainSettings(epochs=args.epochs)
    result = leave_one_subject_out(prepared, settings, log=lambda line: print("  " + line, flush=True),
                                   jobs=args.jobs)
    print(f"leave-one-subject-out, {len(result.folds)} folds, {result.seconds:.0f} s")
    print(f"{'fold':<6}{'phase F1':>9}{'onset ms':>10}{'missed':>8}{'false/seq':>10}{'ttg ms':>8}"
          f"{'size@0':>8}{'@0.5':>6}{'@0.8':>6}{'@end':>6}{'acc@p>=.8':>10}{'cover':>7}")
    onset, half, late = (FRACTIONS.index(f) for f in (0.0, 0.5, 0.8))
    for participant, scores in result.folds.items():
        by = scores.size_accuracy_by_fraction
        print(f"{participant:<6}{scores.phase_macro_f1:>9.3f}{scores.onset_median_delay_ms:>10.0f}"
              f"{scores.onset_missed:>8d}{scores.false_onsets_per_sequence:>10.3f}"
              f"{scores.time_to_grasp_median_error_ms:>8.0f}{by[onset]:>8.3f}{by[half]:>6.3f}{by[late]:>6.3f}"
              f"{scores.size_accuracy_at_end:>6.3f}{scores.size_confident_accuracy_at_end:>10.3f}"
              f"{scores.size_confident_fraction_at_end:>7.2f}")
    by = result.mean_by_fraction()
    print(f"{'mean':<6}{result.mean('phase_macro_f1'):>9.3f}{result.mean('onset_median_delay_ms'):>10.0f}"
          f"{'':>8}{result.mean('false_onsets_per_sequence'):>10.3f}"
          f"{result.mean('time_to_grasp_median_error_ms'):>8.0f}{by[onset]:>8.3f}{by[half]:>6.3f}{by[late]:>6.3f}"
          f"{result.mean('size_accuracy_at_end'):>6.3f}{result.mean('size_confident_accuracy_at_end'):>10.3f}"
          f"{result.mean('size_confident_fraction_at_end'):>7.2f}")
    pooled = result.pooled
    print("per-phase F1 (all folds pooled): "
          + ", ".join(f"{n} {v:.3f}" for n, v in zip(PHASE_NAMES, pooled.phase_f1, strict=True)))
    print("grasp size top-1 by fraction of the reach seen (mean of folds): "
          + ", ".join(f"{f:.1f}: {a:.2f}" for f, a in zip(FRACTIONS, result.mean_by_fraction(), strict=True)))
    print("size said once confident (p >= 0.8, within 0.1 s after the detected reach end) in "
          f"{pooled.size_said_fraction:.0%} of reaches, {pooled.size_said_accuracy:.0%} right, at a median "
          f"{pooled.size_said_median_reach_fraction:.2f} of the reach")

    model = train_reach_model(prepared, settings)
    median_ms, p95_ms = time_online(sequences[:10], model)
    print(f"online recogniser per pose (1 torch thread): median {median_ms:.3f} ms, p95 {p95_ms:.3f} ms")

    args.out.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(pooled.phase_confusion, PHASE_NAMES, args.out / "phase_confusion.png",
                          f"phase, all folds (macro-F1 {pooled.phase_macro_f1:.3f})")
    plot_confusion_matrix(pooled.size_confusion, SIZE_NAMES, args.out / "size_confusion.png",
                          f"grasp size at reach end (top-1 {pooled.size_accuracy_at_end:.3f})")
    plot_size_by_fraction(result, args.out / "size_by_reach_fraction.png")
    report = result.as_dict() | {"online_ms_per_pose": {"median": median_ms, "p95": p95_ms}}
    print(f"wrote {write_json(report, args.out / 'metrics.json')}")


if __name__ == "__main__":
    main()
