"""Per-node health on ``/diagnostics``: lifecycle state, input and output rates, processing time, drops.

Level OK means the node is doing its job: active, taking input, nothing dropped since the last
report. An unconfigured or inactive node, an active one that received nothing in the rate window,
and one that dropped input are WARN, with the reason as the message.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from hand_pose_refiner.filters.stats import RejectionStats


class StageMonitor:
    """Counts what a node takes in, puts out and drops, and how long processing takes.

    Thread-safe: subscription callbacks and worker threads report from different threads.
    """

    def __init__(self, name: str, stats: RejectionStats, window_s: float = 5.0) -> None:
        self.name = name
        self.stats = stats
        # Rejections made by the node's algorithm (filters): reported, but not input drops.
        self.algorithm_stats: RejectionStats | None = None
        self._window_s = window_s
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[float] = deque()
        self._durations: deque[tuple[float, float]] = deque()
        self.inputs_total = 0
        self.outputs_total = 0
        self._drops_reported = 0

    def received(self) -> None:
        with self._lock:
            self._inputs.append(time.monotonic())
            self.inputs_total += 1

    def published(self, processing_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._outputs.append(now)
            self._durations.append((now, processing_s))
            self.outputs_total += 1

    def _trim(self, now: float) -> None:
        for queue in (self._inputs, self._outputs):
            while queue and now - queue[0] > self._window_s:
                queue.popleft()
        while self._durations and now - self._durations[0][0] > self._window_s:
            self._durations.popleft()

    def status(self, hardware_id: str, lifecycle_state: str) -> DiagnosticStatus:
        """A DiagnosticStatus of the node in ``lifecycle_state``; level and message: :func:`health`."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            durations = [d for _, d in self._durations]
            inputs_in_window = len(self._inputs)
            input_rate = inputs_in_window / self._window_s
            output_rate = len(self._outputs) / self._window_s
            inputs_total, outputs_total = self.inputs_total, self.outputs_total
        drops = sum(self.stats.rejections.values())
        values = {
            "lifecycle_state": lifecycle_state,
            "input_rate_hz": f"{input_rate:.2f}",
            "output_rate_hz": f"{output_rate:.2f}",
            "processing_ms_mean": f"{1e3 * np.mean(durations):.2f}" if durations else "nan",
            "processing_ms_max": f"{1e3 * np.max(durations):.2f}" if durations else "nan",
            "inputs_total": str(inputs_total),
            "outputs_total": str(outputs_total),
            "dropped_total": str(drops),
        }
        values.update({f"dropped_{reason}": str(count) for reason, count in self.stats.rejections.items()})
        if self.algorithm_stats is not None:
            values.update({f"rejected_{reason}": str(count)
                           for reason, count in self.algorithm_stats.rejections.items()})
            values.update({f"total_{name}": str(count)
                           for name, count in self.algorithm_stats.totals.items()})
        new_drops, self._drops_reported = drops - self._drops_reported, drops
        level, message = health(lifecycle_state, inputs_in_window, new_drops, self._window_s)
        return DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])


def health(lifecycle_state: str, inputs_in_window: int, new_drops: int, window_s: float) -> tuple[bytes, str]:
    """Level and message of a node: OK only when it is active, received input within the last
    ``window_s`` seconds and dropped nothing since the last report; else WARN with the reason."""
    if lifecycle_state != "active":
        return DiagnosticStatus.WARN, f"{lifecycle_state}: not processing"
    if new_drops:
        return DiagnosticStatus.WARN, f"{new_drops} dropped since the last report"
    if not inputs_in_window:
        return DiagnosticStatus.WARN, f"active, no input in the last {window_s:g} s"
    return DiagnosticStatus.OK, "active"


def diagnostic_array(stamp: object, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """A DiagnosticArray of the given statuses."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = statuses
    return array
