"""Activity annotations (a plain CSV file) and the pose sources they refer to.

One row per labelled time span of one hand::

    source,start_s,end_s,hand,label
    cell_2024-05-02.bag,12.40,15.10,right,screw
    subject_007.npz,3.0,6.5,4,insert

* ``source``: a rosbag2 folder (its ``HandPoseArray`` topic is read) or a ``.npz`` pose
  recording (:class:`PoseRecording`), relative to the CSV file's folder unless absolute. A video
  annotator labels the bag recorded alongside the video.
* ``start_s``, ``end_s``: seconds from the source's first pose frame (an annotator's timeline
  when the video and the poses start together), ``start_s < end_s``.
* ``hand``: ``left``, ``right`` or ``any`` (matched against the tracks' handedness, for raw
  sources whose track ids are only known after tracking), or a track id (an integer >= 0, for
  sources that are already tracked).
* ``label``: an activity class name; it must be one of ``activity.class_names``.

Lines starting with ``#`` and blank lines are ignored. Errors name the file and the line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.errors import ActivityLabelError
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.ros.bags import read_hands
from hand_pose_refiner.skeleton import NUM_KEYPOINTS, Handedness

COLUMNS: tuple[str, ...] = ("source", "start_s", "end_s", "hand", "label")
HAND_NAMES: tuple[str, ...] = ("left", "right", "any")


@dataclass(frozen=True)
class ActivitySegment:
    """One annotated span: ``source``, times in seconds from its first frame, hand, label."""

    source: str
    start_s: float
    end_s: float
    hand: str
    label: str

    def matches(self, track_id: int, handedness: int) -> bool:
        """Whether a track with this id and handedness is the annotated hand."""
        if self.hand == "any":
            return True
        if self.hand in ("left", "right"):
            return handedness == int(Handedness.from_label(self.hand))
        return track_id == int(self.hand)


def _parse_row(row: dict[str, str], where: str, class_names: Sequence[str] | None) -> ActivitySegment:
    values = {key: (row.get(key) or "").strip() for key in COLUMNS}
    if not values["source"]:
        raise ActivityLabelError(f"{where}: empty source")
    try:
        start, end = float(values["start_s"]), float(values["end_s"])
    except ValueError as exc:
        raise ActivityLabelError(f"{where}: start_s {values['start_s']!r} and end_s {values['end_s']!r} "
                                 f"must be numbers (seconds)") from exc
    if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
        raise ActivityLabelError(f"{where}: needs 0 <= start_s < end_s, got {start} and {end}")
    hand = values["hand"].lower()
    if hand not in HAND_NAMES and not (hand.isdigit()):
        raise ActivityLabelError(f"{where}: hand {values['hand']!r} must be left, right, any or a "
                                 f"track id >= 0")
    label = values["label"]
    if not label:
        raise ActivityLabelError(f"{where}: empty label")
    if class_names is not None and label not in class_names:
        raise ActivityLabelError(f"{where}: label {label!r} is not one of the classes "
                                 f"{', '.join(class_names)}")
    return ActivitySegment(values["source"], start, end, hand, label)


def parse_annotations(text: str, source: str = "<annotations>",
                      class_names: Sequence[str] | None = None) -> list[ActivitySegment]:
    """Parse annotation CSV text (see the module docstring); ``class_names`` checks the labels."""
    rows = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ActivityLabelError(f"{source}: no header line; expected {','.join(COLUMNS)}")
    parsed = csv.reader([line for _, line in rows])
    header = [name.strip() for name in next(parsed)]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ActivityLabelError(f"{source}: the header must name the columns {', '.join(COLUMNS)}; "
                                 f"missing {', '.join(missing)}")
    segments = []
    for (number, _), values in zip(rows[1:], parsed, strict=True):
        where = f"{source}:{number}"
        if len(values) != len(header):
            raise ActivityLabelError(f"{where}: {len(values)} fields, the header has {len(header)}")
        segments.append(_parse_row(dict(zip(header, values, strict=True)), where, class_names))
    return segments


def load_annotations(path: str | Path, class_names: Sequence[str] | None = None) -> list[ActivitySegment]:
    """Read an annotation CSV file; sources stay as written (see :func:`resolve_source`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ActivityLabelError(f"{path}: cannot read annotation file: {exc.strerror}") from exc
    return parse_annotations(text, str(path), class_names)


def resolve_source(annotation_file: str | Path, source: str) -> Path:
    """Where a source named in an annotation file lies (relative to that file's folder)."""
    path = Path(source)
    return path if path.is_absolute() else Path(annotation_file).resolve().parent / path


def write_annotations(path: str | Path, segments: Iterable[ActivitySegment]) -> Path:
    """Write annotations as CSV (atomically)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in segments:
        writer.writerow([item.source, f"{item.start_s:.6f}", f"{item.end_s:.6f}", item.hand, item.label])
    return atomic_write_bytes(path, buffer.getvalue().encode())




@dataclass
class PoseRecording:
    """Raw poses of a recording as plain arrays: ``F`` frames of up to ``H`` hands.

    The project's own pose-source format (``.npz``, no pickles): what a pose model produced,
    before any filter. A hand slot whose keypoints are all NaN is no hand. ``track_ids`` is -1
    (untracked) unless known; the synthetic generator sets the true identity of each clip's hand,
    which lets a benchmark bypass the filters (``--filtered``) to measure the classifier alone.
    """

    stamps_ns: np.ndarray  # (F,) int64, strictly increasing
    keypoints: np.ndarray  # (F, H, 21, 2) float32 pixels
    keypoint_scores: np.ndarray  # (F, H, 21) float32
    handedness: np.ndarray  # (F, H) uint8 Handedness values
    image_width: int = 0
    image_height: int = 0
    track_ids: np.ndarray = field(default=None)  # type: ignore[arg-type]  # (F, H) int64; None = all -1

    def __post_init__(self) -> None:
        self.stamps_ns = np.asarray(self.stamps_ns, np.int64).reshape(-1)
        frames = self.stamps_ns.shape[0]
        self.keypoints = np.asarray(self.keypoints, np.float32)
        self.keypoint_scores = np.asarray(self.keypoint_scores, np.float32)
        self.handedness = np.asarray(self.handedness, np.uint8)
        if self.track_ids is None:
            self.track_ids = np.full(self.handedness.shape, -1, np.int64)
        self.track_ids = np.asarray(self.track_ids, np.int64)
        if (self.keypoints.ndim != 4 or self.keypoints.shape[0] != frames
                or self.keypoints.shape[2:] != (NUM_KEYPOINTS, 2)
                or self.keypoint_scores.shape != self.keypoints.shape[:3]
                or self.handedness.shape != self.keypoints.shape[:2]
                or self.track_ids.shape != self.keypoints.shape[:2]):
            raise ActivityLabelError(
                f"pose recording arrays do not fit: stamps {self.stamps_ns.shape}, keypoints "
                f"{self.keypoints.shape}, scores {self.keypoint_scores.shape}, handedness "
                f"{self.handedness.shape}, track ids {self.track_ids.shape} (expected (F,), "
                f"(F, H, 21, 2), (F, H, 21), (F, H), (F, H))")
        if frames > 1 and not (np.diff(self.stamps_ns) > 0).all():
            raise ActivityLabelError("pose recording stamps must be strictly increasing")

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    def frames(self) -> list[FrameHands]:
        """One :class:`FrameHands` per frame (absent hand slots left out)."""
        out = []
        present = np.isfinite(self.keypoints).any(axis=(2, 3))
        for index, stamp in enumerate(self.stamps_ns.tolist()):
            hands = present[index]
            count = int(hands.sum())
            out.append(FrameHands(stamp, self.image_width, self.image_height, self.keypoints[index, hands],
                                  keypoint_scores=self.keypoint_scores[index, hands],
                                  detection_scores=np.full(count, 0.9, np.float32),
                                  handedness=self.handedness[index, hands],
                                  handedness_scores=np.full(count, 0.95, np.float32),
                                  track_ids=self.track_ids[index, hands], model_name="pose-recording"))
        return out

    def save(self, path: str | Path) -> Path:
        """Write as ``.npz`` (atomically)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, stamps_ns=self.stamps_ns, keypoints=self.keypoints,
                            keypoint_scores=self.keypoint_scores, handedness=self.handedness,
                            track_ids=self.track_ids,
                            image_size=np.array([self.image_width, self.image_height], np.int64))
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> PoseRecording:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                width, height = (int(v) for v in data["image_size"])
                tracks = {"track_ids": data["track_ids"]} if "track_ids" in data.files else {}
                return cls(data["stamps_ns"], data["keypoints"], data["keypoint_scores"],
                           data["handedness"], width, height, **tracks)
        except (OSError, KeyError, ValueError) as exc:
            raise ActivityLabelError(f"{path}: not a readable pose recording (.npz): {exc}") from exc


def load_pose_frames(path: str | Path, topic: str = "/hand_poses") -> list[FrameHands]:
    """The frames of a pose source: a ``.npz`` recording, or a rosbag2's ``topic``."""
    path = Path(path)
    if not path.exists():
        raise ActivityLabelError(f"{path}: pose source not found")
    if path.suffix == ".npz":
        return PoseRecording.load(path).frames()

    try:
        frames = list(read_hands(path, topic))
    except (OSError, ValueError, KeyError) as exc:
        raise ActivityLabelError(f"{path}: cannot read HandPoseArray messages on {topic}: {exc}") from exc
    frames.sort(key=lambda frame: frame.stamp_ns)
    return frames
