"""The progress display of the slow stages (decoding, the models): one line on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress display on stderr with frames per second (throttled)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.started = time.perf_counter()
        self._shown = 0.0
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.perf_counter()
        if self.enabled and now - self._shown > 0.25:
            self._shown = now
            self._write()

    def _write(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {self.count}{of} frames, {self.count / elapsed:.1f} frames/s   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._write()
            sys.stderr.write("\n")
