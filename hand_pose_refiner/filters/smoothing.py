"""One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for keypoints, with real time steps.

Low cut-off (strong smoothing) while a keypoint rests, rising with its speed so fast motion is
not delayed. Speeds are measured in hand sizes per second, so one setting fits near and far hands.
"""

from __future__ import annotations

import math

import numpy as np

from hand_pose_refiner.arrays import all_set, vector_lengths


def _alpha(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Smooths a fixed-size array of points (e.g. ``(21, 2)`` keypoints) over time.

    Points flagged invalid are passed through and restart their filter when they return.
    """

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self._value: np.ndarray | None = None
        self._derivative: np.ndarray | None = None
        self._time: float | None = None
        self._complete = False  # every point of _value finite (no restart pending)

    def __call__(self, points: np.ndarray, valid: np.ndarray, time_s: float, scale: float) -> np.ndarray:
        """Smoothed copy of ``points`` at ``time_s``; ``scale`` is the hand size in pixels."""
        points = np.asarray(points, dtype=np.float64)
        if self._value is None or self._time is None or time_s <= self._time:
            self._reset(points, valid, time_s)
            return points.copy()
        dt = time_s - self._time
        # The common case, every point valid now and before, needs no restart or pass-through masks.
        steady = self._complete and all_set(valid)
        step = points - self._value
        derivative = step / dt
        derivative_hat = self._derivative + _alpha(self.d_cutoff_hz, dt) * (derivative - self._derivative)
        speed = vector_lengths(derivative_hat, keepdims=True) / max(scale, 1e-6)
        cutoff = self.min_cutoff_hz + self.beta * speed
        smoothed = self._value + _alpha(cutoff, dt) * step
        self._time = time_s
        if steady:
            self._value = smoothed
            self._derivative = derivative_hat
            # Cheaper than any reduction; where it is False, the full path gives these same values.
            self._complete = all_set(np.isfinite(smoothed))
            return smoothed.copy()
        restart = valid & ~np.isfinite(self._value).all(axis=-1)
        use = (valid & ~restart)[:, None]
        result = np.where(use, smoothed, points)
        self._value = np.where(valid[:, None], result, np.nan)
        self._derivative = np.where(use, derivative_hat, 0.0)
        self._complete = all_set(np.isfinite(self._value))
        return result

    def _reset(self, points: np.ndarray, valid: np.ndarray, time_s: float) -> None:
        self._value = np.where(valid[:, None], points, np.nan)
        self._derivative = np.zeros_like(points)
        self._time = time_s
        self._complete = all_set(np.isfinite(self._value))
