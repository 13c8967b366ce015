"""The reach-to-grasp object-size recordings (Dagioglou et al., HCII 2022) as pose streams.

715 sequences by 8 participants: OpenPose 2D hands at about 60 fps, per-frame phases (idle, reach,
grasp-and-move) and the grasped cube's size (S, M, L) per sequence. The files are read where
they lie (``right_hand.npz``, ``sequences.csv``; see the data folder's README), never copied.

Each frame becomes a :class:`~hand_pose_refiner.hands.FrameHands`, the container that live and
replayed poses use, so the recordings pass through the same spatial and temporal filters as a
cell's poses before the recogniser. How the source's quirks are handled:

* a keypoint stored as ``(0, 0, 0)`` is missing (NaN, state ``MISSING``), not the image corner;
* image size: not published; all coordinates fit 320 x 240 (QVGA), which is assumed;
* time stamps are checked in order, per sequence, and every problem counted in
  :class:`StampCounts`: a stamp equal to the previous one (``repeated``) or earlier than it, or
  negative or not finite (``corrupt``), makes the frame *unusable*: it is not fed to the filters
  (a live pipeline drops such frames too), and the recogniser's decision of the previous frame
  stands for it. A gap over :data:`GAP_S` is kept and counted (``gaps``); the temporal filter
  interpolates short gaps and the recogniser bridges gaps up to ``activity.max_gap_s``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.errors import ActivityLabelError
from hand_pose_refiner.hands import FrameHands, boxes_from_keypoints
from hand_pose_refiner.skeleton import MISSING, NUM_KEYPOINTS, OBSERVED, Handedness

UNLABELLED = 255  # the source's label of a frame whose time stamp is unusable
SIZE_NAMES: tuple[str, ...] = ("S", "M", "L")
IMAGE_WIDTH, IMAGE_HEIGHT = 320, 240
GAP_S = 0.05
_STAMP_BASE_NS = 1_000_000_000  # sequences start near 0 s; keep their ROS stamps positive


@dataclass(frozen=True)
class StampCounts:
    """Time-stamp problems found in the recordings (frames, or gaps between frames)."""

    repeated: int = 0
    corrupt: int = 0
    gaps: int = 0

    def __add__(self, other: StampCounts) -> StampCounts:
        return StampCounts(
            self.repeated + other.repeated, self.corrupt + other.corrupt, self.gaps + other.gaps
        )


@dataclass(frozen=True)
class RtgSequence:
    """One reach-to-grasp-and-move recording of the right hand.

    Attributes:
        name: the source file's stem, e.g. ``P4_S_07``.
        participant: ``P1`` .. ``P8``.
        object_size: index into :data:`SIZE_NAMES`.
        time_s: ``(T,)`` seconds from the sequence start, as published (may repeat, jump, be corrupt).
        keypoints: ``(T, 21, 2)`` float32 pixels, NaN where OpenPose found no point.
        scores: ``(T, 21)`` float32 OpenPose confidences, 0 where missing.
        phase: ``(T,)`` uint8 labels (indices into :data:`PHASE_NAMES`, or :data:`UNLABELLED`).
        usable: ``(T,)`` bool, False where the stamp is repeated or corrupt.
        onset_s, end_s: the labelled reach window on the ``time_s`` axis.
    """

    name: str
    participant: str
    object_size: int
    time_s: npt.NDArray[np.float64]
    keypoints: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    phase: npt.NDArray[np.uint8]
    usable: npt.NDArray[np.bool_]
    onset_s: float
    end_s: float
    stamp_counts: StampCounts = field(default_factory=StampCounts)

    def __len__(self) -> int:
        return len(self.time_s)

    def stamp_ns(self, index: int) -> int:
        """ROS stamp of a usable frame (seconds from the start, offset to stay positive)."""
        return _STAMP_BASE_NS + round(float(self.time_s[index]) * 1e9)

    @property
    def onset_ns(self) -> int:
        return _STAMP_BASE_NS + round(self.onset_s * 1e9)

    @property
    def end_ns(self) -> int:
        return _STAMP_BASE_NS + round(self.end_s * 1e9)

    def frame(self, index: int) -> FrameHands:
        """Frame ``index`` as raw (unfiltered) poses: one right hand, or none if all points are missing."""
        points = self.keypoints[index]
        present = np.isfinite(points[:, 0])
        stamp = self.stamp_ns(index)
        if not present.any():
            return FrameHands.empty(
                stamp, IMAGE_WIDTH, IMAGE_HEIGHT, frame_id="camera", model_name="openpose"
            )
        scores = self.scores[index]
        return FrameHands(
            stamp,
            IMAGE_WIDTH,
            IMAGE_HEIGHT,
            points[None].copy(),
            scores[None].copy(),
            np.where(present, OBSERVED, MISSING).astype(np.uint8)[None],
            boxes_from_keypoints(points[None], present[None]),
            np.array([scores[present].mean()], np.float32),
            np.array([int(Handedness.RIGHT)], np.uint8),
            np.ones(1, np.float32),
            frame_id="camera",
            model_name="openpose",
        )

    def frames(self) -> Iterator[tuple[int, FrameHands]]:
        """``(index, frame)`` of every usable frame, in order."""
        for index in np.flatnonzero(self.usable):
            yield int(index), self.frame(int(index))


def check_stamps(time_s: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.bool_], StampCounts]:
    """Which frames have a usable stamp (finite, >= 0, after the previous usable one), and counts."""
    usable = np.zeros(len(time_s), bool)
    repeated = corrupt = gaps = 0
    last: float | None = None
    for index, stamp in enumerate(time_s.tolist()):
        if not np.isfinite(stamp) or stamp < 0 or (last is not None and stamp < last):
            corrupt += 1
            continue
        if last is not None and stamp == last:
            repeated += 1
            continue
        if last is not None and stamp - last > GAP_S:
            gaps += 1
        usable[index] = True
        last = stamp
    return usable, StampCounts(repeated, corrupt, gaps)


def load_rtg_dataset(folder: Path | str, participants: Sequence[str] | None = None) -> list[RtgSequence]:
    """All sequences (of ``participants``, default all) from the dataset folder.

    Raises :class:`~hand_pose_refiner.errors.ActivityLabelError` naming the file when a file is
    missing or its arrays disagree with ``sequences.csv``.
    """
    folder = Path(folder)
    hand_file, table_file = folder / "right_hand.npz", folder / "sequences.csv"
    for path in (hand_file, table_file):
        if not path.is_file():
            raise ActivityLabelError(f"{path}: not found (expected the rtg_object_size dataset folder)")
    with np.load(hand_file, allow_pickle=False) as data:
        xy = data["xy_q16"].astype(np.float32) / 16.0
        prob = data["prob_u8"].astype(np.float32) / 255.0
        time_s, phase, offsets = data["time_s"], data["phase"], data["seq_offsets"]
    if xy.shape[1:] != (NUM_KEYPOINTS, 2) or not len(xy) == len(prob) == len(time_s) == len(phase):
        raise ActivityLabelError(f"{hand_file}: arrays of unexpected shapes {xy.shape}, {prob.shape}")
    missing = (xy[..., 0] == 0) & (xy[..., 1] == 0) & (prob == 0)
    xy[missing] = np.nan
    with table_file.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if len(rows) != len(offsets) - 1:
        raise ActivityLabelError(
            f"{table_file}: {len(rows)} rows but {hand_file} has {len(offsets) - 1} sequences"
        )
    wanted = set(participants) if participants is not None else None
    sequences = []
    for index, row in enumerate(rows):
        if wanted is not None and row["participant"] not in wanted:
            continue
        start, stop = int(offsets[index]), int(offsets[index + 1])
        if (int(row["frame_start"]), int(row["frame_end"])) != (start, stop):
            raise ActivityLabelError(
                f"{table_file}: row {index} frames {row['frame_start']}.."
                f"{row['frame_end']} disagree with seq_offsets {start}..{stop}"
            )
        if row["object_size"] not in SIZE_NAMES:
            raise ActivityLabelError(f"{table_file}: row {index} has unknown size {row['object_size']!r}")
        times = time_s[start:stop].astype(np.float64)
        usable, counts = check_stamps(times)
        sequences.append(
            RtgSequence(
                Path(row["source_file"]).stem,
                row["participant"],
                SIZE_NAMES.index(row["object_size"]),
                times,
                xy[start:stop],
                prob[start:stop],
                phase[start:stop].astype(np.uint8),
                usable,
                float(row["rtg_onset_s"]),
                float(row["rtg_end_s"]),
                counts,
            )
        )
    return sequences


def participants_of(sequences: Sequence[RtgSequence]) -> list[str]:
    """The participants present, in natural order (P1, P2, ..., P10)."""
    return sorted({s.participant for s in sequences}, key=lambda p: (len(p), p))
