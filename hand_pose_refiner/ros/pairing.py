"""Pairing two streams by exact header stamp (image + detections of the same frame).

``message_filters.TimeSynchronizer`` does this on a ROS install; it is not installable from PyPI,
so this small cache is the path that runs (and is tested) everywhere. Both sides are bounded;
whatever leaves a queue unpaired is counted, never silently lost.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from hand_pose_refiner.filters.stats import RejectionStats

First = TypeVar("First")
Second = TypeVar("Second")
Queued = TypeVar("Queued")


class StampPairing(Generic[First, Second]):
    """Matches items of two streams with the same stamp; keeps at most ``queue_size`` per side."""

    def __init__(self, queue_size: int, stats: RejectionStats, first_name: str = "image",
                 second_name: str = "detections") -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self.stats = stats
        self._names = (first_name, second_name)
        self._first: OrderedDict[int, First] = OrderedDict()
        self._second: OrderedDict[int, Second] = OrderedDict()

    def add_first(self, stamp_ns: int, item: First) -> tuple[First, Second] | None:
        """Add an item of the first stream; the pair if its partner is waiting."""
        partner = self._second.pop(stamp_ns, None)
        if partner is not None:
            self._drop_older(self._second, stamp_ns, self._names[1])
            return item, partner
        self._insert(self._first, stamp_ns, item, self._names[0])
        return None

    def add_second(self, stamp_ns: int, item: Second) -> tuple[First, Second] | None:
        """Add an item of the second stream; the pair if its partner is waiting."""
        partner = self._first.pop(stamp_ns, None)
        if partner is not None:
            self._drop_older(self._first, stamp_ns, self._names[0])
            return partner, item
        self._insert(self._second, stamp_ns, item, self._names[1])
        return None

    def _insert(self, queue: OrderedDict[int, Queued], stamp_ns: int, item: Queued, name: str) -> None:
        if stamp_ns in queue:
            self.stats.reject(f"duplicate_{name}_stamp", 1, f"two {name} messages stamped {stamp_ns} ns")
        queue[stamp_ns] = item
        while len(queue) > self.queue_size:
            queue.popitem(last=False)
            self.stats.reject(f"unpaired_{name}", 1, f"no partner within {self.queue_size} messages")

    def _drop_older(self, queue: OrderedDict[int, Queued], stamp_ns: int, name: str) -> None:
        """Items older than a completed pair can no longer be paired (stamps only grow)."""
        stale = [stamp for stamp in queue if stamp < stamp_ns]
        for stamp in stale:
            del queue[stamp]
        self.stats.reject(f"unpaired_{name}", len(stale), "its partner never arrived")
