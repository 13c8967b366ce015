"""The first stage of a replay: what to read. Recordings planned into shards (whole, or time
segments of a long one with an overlap), and a shard's frames read into the frame store.

A shard is the unit of replay work; any process can run any shard, in any order
(:func:`~hand_pose_refiner.refinement.stages.run_shard`), and
:class:`~hand_pose_refiner.refinement.assembly.Assembly` puts their results together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hand_pose_refiner.errors import InputError
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.refinement.cache import FrameStore, PredictionCache, StoredFrame
from hand_pose_refiner.refinement.input_spec import InputSpec, ReadReport
from hand_pose_refiner.refinement.inputs import count_frames, read_frames
from hand_pose_refiner.refinement.progress import Progress


@dataclass(frozen=True)
class Shard:
    """One unit of replay work: a whole recording, or one time segment of a long one.

    A segment outputs the frames ``owned`` (``start <= index < stop``, numbered as in the whole
    recording; ``stop`` None: to the end) but decodes and filters ``context``: the owned frames
    plus ``overlap`` frames on each side, so that the tracker and the offline temporal filter
    (gap filling, track confirmation, the speed check) see at the cut what one pass would see.
    Shards are independent: any process can run any shard, in any order.
    """

    number: int  # the recording's position among the inputs
    spec: InputSpec  # the whole recording (no window)
    prefix: str  # image file names: <prefix>_<frame:06d>.jpg
    segment: int = 0
    segments: int = 1
    owned: tuple[int, int | None] = (0, None)
    context: tuple[int, int | None] = (0, None)

    @property
    def name(self) -> str:
        """The recording, and the segment when it is cut (for reports and errors)."""
        if self.segments == 1:
            return str(self.spec.path)
        stop = "end" if self.owned[1] is None else self.owned[1]
        return f"{self.spec.path} [segment {self.segment + 1}/{self.segments}: frames {self.owned[0]}-{stop}]"

    def read_spec(self) -> InputSpec:
        return self.spec if self.segments == 1 else replace(self.spec, window=self.context)

    def owns(self, index: int) -> bool:
        return index >= self.owned[0] and (self.owned[1] is None or index < self.owned[1])


@dataclass
class FrameRecord:
    """One output frame of a shard: raw and filtered hands, and its JPEG (a file or the bytes)."""

    index: int
    stamp_ns: int
    frame_id: str
    width: int
    height: int
    raw: FrameHands
    kept: FrameHands
    image: Path | bytes | None


@dataclass
class ShardResult:
    """What one shard gave: its owned frames, the filtered frames of its leading overlap (to
    join track ids across the cut), the filters' counts, timings; or why it failed."""

    shard: Shard
    kind: str = ""
    frames: list[FrameRecord] = field(default_factory=list)
    lead: list[FrameHands] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    predictions_cached: bool = False
    inference_seconds: float = 0.0
    filter_seconds: float = 0.0
    skipped_frames: dict[str, int] = field(default_factory=dict)
    skip_examples: dict[str, str] = field(default_factory=dict)
    damage: str | None = None
    error: str | None = None
    traceback: str | None = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "input"


def plan_shards(inputs: Sequence[InputSpec], segment_frames: int | None = None,
                overlap_frames: int = 0) -> list[Shard]:
    """The shards of a replay, in output order.

    Without ``segment_frames`` every recording is one shard. With it, a recording longer than
    that (by its frame count read without decoding: :func:`count_frames`) is cut into segments
    of ``segment_frames`` frames, each read with ``overlap_frames`` more on either side; the
    last segment runs to the end, so a frame count that is an estimate loses no frame. Stills
    (unrelated photographs) and recordings whose length is unknown are not cut.
    """
    shards = []
    for number, spec in enumerate(inputs):
        prefix = _safe(spec.path.stem)
        prefix = f"{number:02d}_{prefix}" if len(inputs) > 1 else prefix
        whole = Shard(number, spec.whole(), prefix)
        count = None
        if segment_frames is not None and not spec.stills:
            try:
                count = count_frames(spec)
            except InputError:
                count = None  # one shard; running it reports the input by name
        if count is None or segment_frames is None or count <= segment_frames:
            shards.append(whole)
            continue
        total = math.ceil(count / segment_frames)
        for segment in range(total):
            start = segment * segment_frames
            stop = None if segment == total - 1 else start + segment_frames
            context = (max(0, start - overlap_frames), None if stop is None else stop + overlap_frames)
            shards.append(replace(whole, segment=segment, segments=total, owned=(start, stop),
                                  context=context))
    return shards


def decode_shard(shard: Shard, cache_root: Path, progress: bool) -> FrameStore:
    """The shard's frames decoded into its frame store, once (raises InputError on a bad input)."""
    spec = shard.read_spec()
    store = FrameStore(cache_root, spec)
    if not store.complete:
        display = Progress(f"decode {spec.path.name}", None, progress)
        report = ReadReport()
        store.build(read_frames(spec, report), report, display)
        display.close()
    return store


def cut_from_whole_recording(shard: Shard, cache_root: Path, predictions: PredictionCache,
                             key: str) -> tuple[list[StoredFrame], list[FrameHands]] | None:
    """A segment's frames and predictions cut from the whole recording's cache, if it has both.

    So a cut replay after a one-pass replay (or another cut) neither decodes nor runs the models
    again, and its filters see exactly the predictions one pass saw.
    """
    if shard.segments == 1:
        return None
    store = FrameStore(cache_root, shard.spec)
    if not store.complete:
        return None
    raw = predictions.load(store, key)
    if raw is None:
        return None
    start, stop = shard.context
    inside = [(frame, hands) for frame, hands in zip(store.frames(), raw, strict=True)
              if frame.index >= start and (stop is None or frame.index < stop)]
    return [frame for frame, _ in inside], [hands for _, hands in inside]


def note_skips(result: ShardResult, report: ReadReport) -> None:
    """The skipped frames a shard owns, and the damage its reading met, into its result."""
    result.skipped_frames = report.counts(result.shard.owns)
    result.skip_examples = {reason: text for reason, text in report.examples.items()
                            if reason in result.skipped_frames}
    result.damage = report.damage
