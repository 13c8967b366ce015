"""Plots of a reach cross-validation."""

from __future__ import annotations

from pathlib import Path

from hand_pose_refiner.activity.reach_cross_validation import CrossValidation
from hand_pose_refiner.activity.reach_evaluation import FRACTIONS


def plot_size_by_fraction(result: CrossValidation, path: str | Path) -> Path:
    """Grasp-size accuracy against the fraction of the reach seen, per fold and their mean."""
    import matplotlib  # not a dependency of the package: only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 4))
    for scores in result.folds.values():
        axes.plot(FRACTIONS, scores.size_accuracy_by_fraction, color="0.75", linewidth=1)
    axes.plot(FRACTIONS, result.mean_by_fraction(), color="C0", linewidth=2.5, label="mean of folds")
    axes.axhline(1 / 3, color="C3", linestyle="--", label="chance")
    axes.set_xlabel("fraction of the reach seen")
    axes.set_ylabel("grasp size top-1")
    axes.set_ylim(0, 1)
    axes.set_title("grasp size, leave-one-subject-out (grey: single folds)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
