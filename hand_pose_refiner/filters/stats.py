"""Counting rejections by reason, logging each reason once.

Filters see bad input all the time (NaN keypoints, jittery models, out-of-order stamps); logging
every case would flood the console, and dropping them silently would hide a broken camera. So
every rejection is counted under its reason, and the first of each reason is logged.
"""

from __future__ import annotations

import logging
from collections import Counter

LOGGER = logging.getLogger("hand_pose_refiner.filters")


class RejectionStats:
    """Per-reason counters of one filter stage, plus totals of what went in and out."""

    def __init__(self, stage: str, logger: logging.Logger | None = LOGGER) -> None:
        """``logger=None`` counts without logging (parameter sweeps run thousands of filters)."""
        self.stage = stage
        self.rejections: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self._logger = logger
        self._logged: set[str] = set()

    def reject(self, reason: str, count: int = 1, detail: str = "") -> None:
        """Count ``count`` rejections for ``reason``; log the first one of each reason."""
        if count <= 0:
            return
        self.rejections[reason] += count
        if reason not in self._logged and self._logger is not None:
            self._logged.add(reason)
            self._logger.warning("%s: rejected for %s%s (logged once; further ones are counted)",
                                 self.stage, reason, f": {detail}" if detail else "")

    def add(self, name: str, count: int = 1) -> None:
        """Count ``count`` items under a throughput total (frames, hands in, hands out, ...)."""
        self.totals[name] += count

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Plain mapping for reports: ``{"totals": {...}, "rejections": {...}}``."""
        return {"totals": dict(self.totals), "rejections": dict(self.rejections)}

    def merge(self, other: RejectionStats) -> None:
        """Add another stage's (or worker's) counts to these."""
        self.rejections.update(other.rejections)
        self.totals.update(other.totals)
