"""A recording annotated with its hands, as a video to watch: ``hand-pose-refiner annotate``.

The frames of a video, bag or image folder (:mod:`~hand_pose_refiner.refinement.inputs`) go
through :meth:`HandPipeline.track_rgb <hand_pose_refiner.api.HandPipeline.track_rgb>`, what the
live graph runs (hands followed from frame to frame, spatial filter, tracker, online temporal
filter), then, where an activity model can be loaded, the activity recogniser the live node runs.
Each frame is written to an MP4 (OpenCV, ``mp4v``) with every filtered hand drawn: skeleton,
track id, handedness and the track's latest activity label. The output has exactly the frames
read, in order and at their size: a frame without released hands (or not newer than the one
before, which the live graph drops) is written as read; a frame that cannot be decoded is left
out and counted in the summary. The file is written beside ``out`` and renamed when complete.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from hand_pose_refiner.api import HandPipeline, StampedRGB
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.drawing import draw_hands
from hand_pose_refiner.errors import ActivityCheckpointError, ConfigError, InputError
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.refinement.input_spec import Frame, InputSpec, ReadReport
from hand_pose_refiner.refinement.inputs import count_frames, read_frames
from hand_pose_refiner.refinement.progress import Progress

VIDEO_CODEC = "mp4v"
RATE_FRAMES = 8  # the output's frame rate is the median rate of this many first frames


class Recognizer(Protocol):
    """What the activity node runs: one filtered frame in, decisions (with ``track_id`` and ``label``) out."""

    def push(self, frame: FrameHands) -> list[Any]: ...


@dataclass(frozen=True)
class ActivitySource:
    """The recogniser ``annotate`` runs, or why there is none (``recognizer`` None)."""

    recognizer: Recognizer | None
    description: str


@dataclass(frozen=True)
class AnnotateSummary:
    """What one annotated video holds."""

    out: Path
    frames: int
    width: int
    height: int
    fps: float
    hands: int
    frames_with_hands: int
    labelled_hands: int
    activity: str
    seconds: float
    skipped: dict[str, int] = field(default_factory=dict)  # frames left out, by reason
    damage: str | None = None  # where the recording stopped being readable before its end

    def skipped_line(self) -> str | None:
        """The frames left out and the damage, in one line; None when nothing was."""
        parts = [f"{count} {reason}" for reason, count in self.skipped.items()]
        if self.damage:
            parts.append(self.damage)
        return f"skipped: {'; '.join(parts)}" if parts else None


def load_activity(config: ActivityConfig) -> ActivitySource:
    """The recogniser the live activity node loads for ``config``. A checkpoint the config names
    must load (the node would refuse to configure without it); only when the setting is empty and
    the install lacks the packaged model are hands drawn alone, with the reason."""
    from hand_pose_refiner.activity.packaged import load_recognizer  # torch, once a model is wanted
    from hand_pose_refiner.activity.reach import ReachRecognizer  # torch, as above

    try:
        recognizer, checkpoint = load_recognizer(config)
    except ActivityCheckpointError as exc:
        if config.checkpoint:
            raise
        return ActivitySource(None, f"no activity model ({exc}): hands only")
    except FileNotFoundError as exc:
        raise ActivityCheckpointError(f"activity.checkpoint = {config.checkpoint!r}: no such file") from exc
    kind = "reach model" if isinstance(recognizer, ReachRecognizer) else "activity model"
    return ActivitySource(recognizer, f"{kind} {checkpoint}")


def _decision_text(decision: Any) -> str:
    """``label 0.87``: a decision's label and its probability (reach: the phase's score)."""
    confidence = getattr(decision, "confidence", None)
    if confidence is None:
        confidence = float(decision.phase_scores[decision.phase])
    return f"{decision.label} {confidence:.2f}"


class ActivityLabels:
    """Each track's latest activity decision, as the text drawn next to its hand."""

    def __init__(self, recognizer: Recognizer | None) -> None:
        self.recognizer = recognizer
        self.latest: dict[int, str] = {}

    def update(self, hands: FrameHands) -> dict[int, str]:
        """Push one filtered frame; the labels of the tracks in it (those decided so far)."""
        if self.recognizer is None:
            return {}
        for decision in self.recognizer.push(hands):
            self.latest[int(decision.track_id)] = _decision_text(decision)
        present = {int(track_id) for track_id in hands.track_ids}
        return {track_id: text for track_id, text in self.latest.items() if track_id in present}


def frame_rate(stamps_ns: list[int], fallback: float) -> float:
    """Frames per second from the median gap of the stamps (``fallback`` with fewer than two)."""
    gaps = np.diff(np.asarray(stamps_ns, np.int64))
    gaps = gaps[gaps > 0]
    return float(1e9 / np.median(gaps.astype(np.float64))) if gaps.size else fallback


def progress_display(total: int | None, enabled: bool) -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(advance by n frames, close)``: a tqdm bar on stderr where tqdm is installed, else a line."""
    if not enabled:
        return (lambda count: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:
        line = Progress("annotate", total, enabled=True)
        return (lambda count: line(line.count + count)), line.close
    bar = tqdm(total=total, unit="frame", desc="annotate", file=sys.stderr)
    return bar.update, bar.close


class _VideoOutput:
    """An mp4 written frame by frame to a temporary name beside ``out``, renamed on :meth:`commit`."""

    def __init__(self, out: Path, fps: float, size: tuple[int, int]) -> None:
        self.out, self.fps, self.size = out, fps, size
        self.partial = out.with_name(f".{out.stem}.partial{out.suffix}")
        fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODEC)
        self.writer = cv2.VideoWriter(str(self.partial), fourcc, fps, size)
        if not self.writer.isOpened():
            raise InputError(f"{out}: OpenCV cannot write an {VIDEO_CODEC} video here")
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def commit(self) -> None:
        self.writer.release()
        os.replace(self.partial, self.out)

    def abandon(self) -> None:
        self.writer.release()
        self.partial.unlink(missing_ok=True)


class _Annotator:
    """Writes each frame read, drawn with the hands :meth:`HandPipeline.track_rgb` releases for it."""

    def __init__(self, video: _VideoOutput, recognizer: Recognizer | None,
                 advance: Callable[[int], None]) -> None:
        self.video, self.advance = video, advance
        self.labels = ActivityLabels(recognizer)
        self.pending: deque[Frame] = deque()  # read, not written yet (oldest first)
        self.hands = self.frames_with_hands = self.labelled_hands = 0

    def stamped(self, frames: Iterable[Frame]) -> Iterator[StampedRGB]:
        """The frames to track, each kept until written; a frame not newer than the one before is
        not tracked (the live graph drops it) and is written as read."""
        last_ns: int | None = None
        for frame in frames:
            self.pending.append(frame)
            if last_ns is None or frame.stamp_ns > last_ns:
                last_ns = frame.stamp_ns
                yield frame.stamp_ns, frame.rgb

    def write(self, hands: FrameHands) -> None:
        """Write the frame ``hands`` belong to, and before it those that have no hands to draw."""
        while self.pending:
            frame = self.pending.popleft()
            if frame.stamp_ns == hands.stamp_ns:
                self._write_frame(frame, hands)
                return
            self._write_frame(frame, None)

    def finish(self) -> None:
        while self.pending:
            self._write_frame(self.pending.popleft(), None)

    def _write_frame(self, frame: Frame, hands: FrameHands | None) -> None:
        labels = self.labels.update(hands) if hands is not None else {}
        self.advance(1)
        if hands is None or not len(hands):
            self.video.write(frame.rgb)
            return
        self.hands += len(hands)
        self.frames_with_hands += 1
        self.labelled_hands += sum(int(track_id) in labels for track_id in hands.track_ids)
        self.video.write(draw_hands(frame.rgb, hands, labels))


def _open_video(out: Path, frames: Iterator[Frame], spec: InputSpec) -> tuple[_VideoOutput, list[Frame]]:
    """The output video and the first frames read: the frame rate from their stamps, the size
    from the first one."""
    first = list(islice(frames, RATE_FRAMES))
    if not first:
        raise InputError(f"{spec.path}: no frame could be read")
    rate = frame_rate([frame.stamp_ns for frame in first], spec.fps)
    return _VideoOutput(out, rate, (first[0].rgb.shape[1], first[0].rgb.shape[0])), first


def annotate(spec: InputSpec, out: Path, pipeline: HandPipeline, activity: ActivitySource | None = None,
             progress: bool = True) -> AnnotateSummary:
    """Write ``out`` (.mp4): every frame of ``spec`` with its tracked, filtered hands and activity
    labels drawn, the hands as ``pipeline.track_rgb`` gives them."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ConfigError(f"{out}: the annotated video must be an .mp4 file")
    if out.exists():
        raise FileExistsError(f"{out} exists already; choose a new output file")
    activity = activity or ActivitySource(None, "no activity model: hands only")
    advance, close = progress_display(count_frames(spec), progress)
    started = time.perf_counter()
    video: _VideoOutput | None = None
    report = ReadReport()
    try:
        frames = read_frames(spec, report)
        video, first = _open_video(out, frames, spec)
        annotator = _Annotator(video, activity.recognizer, advance)
        for hands in pipeline.track_rgb(annotator.stamped(chain(first, frames))):
            annotator.write(hands)
        annotator.finish()
        video.commit()
    except BaseException:
        if video is not None:
            video.abandon()
        raise
    finally:
        close()
    return AnnotateSummary(out, video.frames, video.size[0], video.size[1], video.fps, annotator.hands,
                           annotator.frames_with_hands, annotator.labelled_hands, activity.description,
                           time.perf_counter() - started, report.counts(), report.damage)
