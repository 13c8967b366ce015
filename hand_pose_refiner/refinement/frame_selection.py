"""Which frames of a recording an :class:`~.input_spec.InputSpec` reads: every ``stride``-th from
``offset`` on, at most ``max_frames``, only those in its window.

Frames are numbered by their place among the kept frames (``kept``), so that a segment of a
recording numbers its frames as the whole recording would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from hand_pose_refiner.refinement.input_spec import InputSpec

Item = TypeVar("Item")


def is_kept(index: int, kept: int, spec: InputSpec) -> bool:
    """Whether source frame ``index`` is the recording's ``kept``-th frame (offset, stride, cap)."""
    return (index >= spec.offset and (index - spec.offset) % spec.stride == 0
            and (spec.max_frames is None or kept < spec.max_frames))


def reading_done(kept: int, spec: InputSpec) -> bool:
    """Whether no frame numbered ``kept`` or later is wanted (cap or end of the window)."""
    if spec.window is not None and spec.window[1] is not None and kept >= spec.window[1]:
        return True
    return spec.max_frames is not None and kept >= spec.max_frames


def in_window(kept: int, spec: InputSpec) -> bool:
    """Whether the recording's ``kept``-th frame is decoded (frames before a window are skipped)."""
    return kept >= spec.first_index


def select_frames(items: Iterable[Item], spec: InputSpec) -> Iterator[tuple[int, int, Item]]:
    """``(kept, source index, item)`` of the items a spec decodes: every ``stride``-th, at most
    ``max_frames``, only those in its window; stops reading once nothing later is wanted."""
    kept = 0
    for index, item in enumerate(items):
        if reading_done(kept, spec):
            return
        if not is_kept(index, kept, spec):
            continue
        if in_window(kept, spec):
            yield kept, index, item
        kept += 1


def kept_count(source_frames: int, spec: InputSpec) -> int:
    """How many frames a spec keeps of a recording of ``source_frames`` frames (whole, no window)."""
    kept = -(-max(source_frames - spec.offset, 0) // spec.stride)
    return kept if spec.max_frames is None else min(kept, spec.max_frames)
