"""The round policy of a refinement run: each round's candidate thresholds, and the decisions taken
on the rounds' scores (which round is acceptable, which one a round starts from, which one is the
result, when to stop).

The decisions read only :class:`RoundMeasures` per evaluated round, so they are pure functions of
the recorded evaluations: a resumed run takes the same decisions as the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from hand_pose_refiner.config import Config


@dataclass(frozen=True)
class Thresholds:
    """One round's candidate thresholds and filter strictness for the pseudo-labels."""

    detection_score_threshold: float
    min_presence: float
    min_hand_score: float
    min_keypoint_score: float
    min_keypoints: int
    bone_ratio_tolerance: float
    max_backward_bend_deg: float

    def apply(self, config: Config) -> Config:
        """The config with these thresholds (everything else as the live config)."""
        return replace(
            config,
            models=replace(config.models, detection_score_threshold=self.detection_score_threshold),
            spatial_filter=replace(config.spatial_filter, min_hand_score=self.min_hand_score,
                                   min_keypoint_score=self.min_keypoint_score,
                                   min_keypoints=self.min_keypoints,
                                   bone_ratio_tolerance=self.bone_ratio_tolerance,
                                   max_backward_bend_deg=self.max_backward_bend_deg))


# Low candidate thresholds early, strict anatomy throughout (live config: min_keypoints 12,
# bone_ratio_tolerance 1.6, max_backward_bend_deg 50, detection threshold 0.5, presence 0.5).
DEFAULT_SCHEDULE: tuple[Thresholds, ...] = (
    Thresholds(0.10, 0.20, 0.02, 0.15, 18, 1.3, 35.0),
    Thresholds(0.20, 0.30, 0.05, 0.25, 17, 1.4, 40.0),
    Thresholds(0.30, 0.40, 0.10, 0.30, 16, 1.5, 45.0),
)


@dataclass(frozen=True)
class RoundMeasures:
    """What the decisions read of one round's evaluation: the measure (detection rate on the
    targets), PCK on the labelled sets and the detection rate on the check recordings (None
    without labelled sets or check recordings)."""

    measure: float
    pck: float | None = None
    check_rate: float | None = None


@dataclass(frozen=True)
class RoundPolicy:
    """The no-regression checks and the stop rule over the evaluated rounds ``measures`` (round 0:
    the initial models)."""

    measures: Mapping[int, RoundMeasures]
    max_pck_drop: float = 0.0
    max_check_drop: float = 0.05
    min_improvement: float = 0.005
    patience: int = 1

    def pck_floor(self) -> float:
        """The lowest labelled PCK a round may have: the initial models' less ``max_pck_drop``."""
        initial = self.measures[0].pck
        if initial is None:
            raise KeyError("round 0 has no labelled PCK")
        return float(initial) - self.max_pck_drop

    def regression(self, k: int) -> str | None:
        """Why round ``k`` fails the no-regression checks (labelled PCK, check recordings), if it does."""
        results, initial = self.measures[k], self.measures[0]
        if initial.pck is not None:
            before, after = initial.pck, results.pck
            if after is None:
                raise KeyError(f"round {k} has no labelled PCK")
            if after < self.pck_floor():
                return f"PCK on the labelled images fell from {before:.3f} to {after:.3f}"
        if initial.check_rate is not None:
            before, after = initial.check_rate, results.check_rate
            if after is None:
                raise KeyError(f"round {k} has no detection rate on the check recordings")
            if after < before - self.max_check_drop:
                return f"detection rate on the check recordings fell from {before:.3f} to {after:.3f}"
        return None

    def acceptable(self, k: int) -> bool:
        """Whether round ``k`` keeps the no-regression checks."""
        return self.regression(k) is None

    def acceptable_rounds(self, before: int) -> list[int]:
        """The evaluated rounds before ``before`` that keep the checks."""
        return [k for k in range(before) if k in self.measures and self.acceptable(k)]

    def best_iteration(self, iterations: int) -> int:
        """The result: the round (of ``0..iterations``) with the highest measure that keeps the
        checks (the earliest of equals)."""
        rounds = self.acceptable_rounds(iterations + 1)
        return max(rounds, key=lambda k: (self.measures[k].measure, -k))

    def base_iteration(self, k: int) -> int:
        """The round whose models round ``k`` starts from: the best acceptable round before it,
        the later of equals (it has learnt more of the target)."""
        rounds = self.acceptable_rounds(k)
        return max(rounds, key=lambda j: (self.measures[j].measure, j))

    def stop_reason(self, k: int) -> str | None:
        """Why no round after ``k`` should run (None: go on)."""
        if k == 0:
            return None
        best_before = max(self.measures[j].measure for j in range(k) if self.acceptable(j))
        stale = 0
        for j in range(1, k + 1):
            measure = self.measures[j].measure
            improved = self.acceptable(j) and measure >= max(
                self.measures[i].measure for i in range(j) if self.acceptable(i)
            ) + self.min_improvement
            stale = 0 if improved else stale + 1
        if stale >= self.patience:
            rejected = [f"round {j}: {self.regression(j)}" for j in range(k - stale + 1, k + 1)
                        if self.regression(j)]
            return (f"no improvement of the detection rate for {stale} round(s) "
                    f"(best before round {k}: {best_before:.3f})"
                    + (f"; rejected by the no-regression checks: {'; '.join(rejected)}" if rejected else ""))
        return None


def last_epoch_keeping(scores: Sequence[float], floor: float) -> int:
    """The last epoch (1-based) whose score is at least ``floor``; the last epoch if none is."""
    passing = [epoch for epoch, score in enumerate(scores, start=1) if score >= floor]
    return passing[-1] if passing else len(scores)
