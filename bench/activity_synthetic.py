"""Activity recognition on the self-generated synthetic benchmark: top-1, recall, robustness curves.

SYNTHETIC DATA: kinematic 3D hands projected by random cameras (see
hand_pose_refiner/activity/synthetic.py), passed through the live filter chain. The figures show
what the classifier separates and how it degrades with keypoint noise and missing keypoints; they
are not the accuracy on a real cell's recordings, for which no labelled data exists yet.

Trains on subjects (generator seeds) 0..N-1, tests on subjects 1000.. (held out), on CPU, then
re-generates the test subjects at fixed noise levels and fixed fractions of missing keypoints.
Writes confusion_matrix.png, accuracy_vs_noise.png, accuracy_vs_missing.png, results.json and
model.safetensors to --out.

    .venv/bin/python bench/activity_synthetic.py [--out runs/activity_synthetic] [--epochs 12]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)

from hand_pose_refiner.activity.dataset import WindowSet, labelled_windows
from hand_pose_refiner.activity.synthetic import SyntheticSettings, generate_recording
from hand_pose_refiner.activity.training import (
    TrainSettings,
    evaluate,
    plot_confusion,
    train_activity_model,
    write_json,
)
from hand_pose_refiner.config import Config

NOISE_LEVELS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2)  # sigma, palm sizes
MISSING_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # fraction of keypoints dropped
CURVE_NOISE = 0.01  # noise kept on while sweeping the missing fraction


def windows_of(seeds, settings: SyntheticSettings, config: Config, stride: int,
               noise: float | None = None, missing: float | None = None,
               run_filters: bool = True) -> tuple[WindowSet, int]:
    """Labelled windows of some subjects, and how many annotated clips they had.

    ``run_filters=False`` feeds the raw poses, tracked by their true clip identity, straight to the
    windows: the classifier alone, without what the filters keep out or fill in.
    """
    sets, clips = [], 0
    for seed in seeds:
        recording, segments = generate_recording(seed, settings, noise, missing)
        sets.append(labelled_windows(recording.frames(), segments, config, stride, run_filters,
                                     source=f"subject {seed}"))
        clips += len(segments)
    return WindowSet.concatenate(sets), clips


def plot_curve(curve: dict[str, list[dict[str, float]]], xlabel: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    styles = {"filtered": ("C0", "through the filter chain"), "raw": ("C1", "raw poses, true tracks")}
    for mode, points in curve.items():
        colour, name = styles[mode]
        levels = [p["level"] for p in points]
        reference = max(points[0]["windows"], 1)
        axes.plot(levels, [p["top1"] for p in points], "o-", color=colour, label=f"top-1, {name}")
        axes.plot(levels, [p["windows"] / reference for p in points], "s:", color=colour, alpha=0.6,
                  label=f"windows left, {name}")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("top-1 accuracy / fraction of windows left")
    axes.set_ylim(0, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=7)
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)  # noise is on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/activity_synthetic"))
    parser.add_argument("--train-subjects", type=int, default=8)
    parser.add_argument("--test-subjects", type=int, default=4)
    parser.add_argument("--clips-per-class", type=int, default=6)
    parser.add_argument("--curve-clips-per-class", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = Config()
    activity = config.activity
    settings = SyntheticSettings(clips_per_class=args.clips_per_class)
    train_seeds = list(range(args.train_subjects))
    test_seeds = [1000 + i for i in range(args.test_subjects)]

    started = time.perf_counter()
    train, train_clips = windows_of(train_seeds, settings, config, stride=4)
    test, test_clips = windows_of(test_seeds, settings, config, stride=activity.stride_frames)
    print(f"synthetic data: {len(train)} training windows ({train_clips} clips, subjects {train_seeds}), "
          f"{len(test)} test windows ({test_clips} clips, subjects {test_seeds}); "
          f"window {activity.window_frames} poses; {time.perf_counter() - started:.1f} s")
    print(f"  training windows per class: {train.class_counts()}")
    print(f"  windowing of the test subjects: {test.stats.as_dict()}")

    started = time.perf_counter()
    model, history = train_activity_model(train, activity, TrainSettings(epochs=args.epochs, seed=args.seed,
                                                                         threads=args.threads), log=None)
    train_s = time.perf_counter() - started
    print(f"training: {args.epochs} epochs, {train_s:.1f} s on CPU ({args.threads} threads); loss "
          f"{history.losses[0]:.3f} -> {history.losses[-1]:.3f}")
    model.save(args.out / "model.safetensors")

    result = evaluate(model, test)
    print(f"held-out subjects (noise sigma 0-0.03 palm sizes, 0-15 % keypoints missing): {result.summary()}")
    print("confusion (rows: true, columns: predicted):")
    for name, row in zip(result.class_names, result.confusion, strict=True):
        print(f"  {name:>7s} {row.tolist()}")
    plot_confusion(result, args.out / "confusion_matrix.png",
                   f"synthetic held-out subjects: top-1 {result.top1:.3f} ({result.windows} windows)")

    curve_settings = SyntheticSettings(clips_per_class=args.curve_clips_per_class)
    curves: dict[str, dict[str, list[dict[str, float]]]] = {"noise": {}, "missing": {}}
    for kind, levels in (("noise", NOISE_LEVELS), ("missing", MISSING_LEVELS)):
        for mode in ("filtered", "raw"):
            points = curves[kind].setdefault(mode, [])
            for level in levels:
                noise, missing = (level, 0.0) if kind == "noise" else (CURVE_NOISE, level)
                windows, _ = windows_of(test_seeds, curve_settings, config, activity.stride_frames,
                                        noise, missing, run_filters=mode == "filtered")
                point = evaluate(model, windows)
                points.append({"level": level, "top1": point.top1, "windows": point.windows})
                print(f"  {kind} {level:.2f} ({mode}): top-1 {point.top1:.3f} on {point.windows} windows")
    plot_curve(curves["noise"], "keypoint noise sigma, palm sizes (no keypoints missing)",
               args.out / "accuracy_vs_noise.png", "synthetic held-out subjects: accuracy vs keypoint noise")
    plot_curve(curves["missing"], f"fraction of keypoints missing (noise sigma {CURVE_NOISE} palm sizes)",
               args.out / "accuracy_vs_missing.png",
               "synthetic held-out subjects: accuracy vs missing keypoints")
    write_json({"data": "synthetic (hand_pose_refiner.activity.synthetic), not recordings",
                "train_subjects": train_seeds, "test_subjects": test_seeds,
                "train_windows": len(train), "train_seconds": train_s, "losses": history.losses,
                "test": result.as_dict(), "curves": curves}, args.out / "results.json")
    print(f"wrote {args.out}/confusion_matrix.png, accuracy_vs_noise.png, accuracy_vs_missing.png, "
          f"results.json, model.safetensors")


if __name__ == "__main__":
    main()
