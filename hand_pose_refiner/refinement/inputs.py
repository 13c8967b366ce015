"""Readers for every kind of recording replay accepts: bags, videos and folders of images.

Each reader yields RGB frames with real time stamps, in order, so that the temporal filter sees
what the live nodes would have seen. Bad input never costs good data: a frame that cannot be
decoded (empty, short buffer, undecodable or truncated JPEG, ...) is skipped and counted by
reason in a :class:`ReadReport`, and a recording damaged part-way (a truncated MCAP, a bag that
fails mid-read) gives the frames before the damage. A recording is refused whole, with an
:class:`InputError` naming the file, only when nothing in it can be read (missing, corrupt, no
or several image topics), so the caller can go on with the other inputs.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError

from hand_pose_refiner.errors import BadFrameError, ImageError, InputError, UnsupportedEncodingError
from hand_pose_refiner.images import ENCODINGS, jpeg_is_truncated

Item = TypeVar("Item")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# What a broken bag raises while being opened or read: refused as an InputError naming the file.
_BAG_ERRORS = (AnyReaderError, Rosbag1ReaderError, Rosbag2ReaderError, OSError, ImageError,
               struct.error, sqlite3.DatabaseError, KeyError, EOFError)
# What one message that cannot be deserialised raises: that frame is skipped.
_MESSAGE_ERRORS = (struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError, AssertionError)
# What one image that cannot be converted raises: that frame is skipped.
_PIXEL_ERRORS = (ImageError, cv2.error, ValueError)


@dataclass
class ReadReport:
    """What reading one recording left out: frames skipped by reason, and damage that ended it.

    ``skips`` holds ``(frame index, reason)`` (the index a good frame there would have had, so a
    segment counts only its own frames); ``examples`` the first skip of each reason in words;
    ``damage`` says where a recording stopped being readable before its end and how many
    messages were read before it.
    """

    skips: list[tuple[int, str]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    damage: str | None = None

    def skip(self, index: int, reason: str, detail: str) -> None:
        self.skips.append((index, reason))
        self.examples.setdefault(reason, f"frame {index}: {detail}")

    def counts(self, owns: Callable[[int], bool] = lambda index: True) -> dict[str, int]:
        """Skipped frames per reason (of the frames ``owns`` accepts)."""
        return dict(sorted(Counter(reason for index, reason in self.skips if owns(index)).items()))

    def as_dict(self) -> dict[str, object]:
        return {"skips": [list(item) for item in self.skips], "examples": self.examples,
                "damage": self.damage}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadReport:
        return cls([(int(i), str(r)) for i, r in data.get("skips", [])], dict(data.get("examples", {})),
                   data.get("damage"))


@dataclass(frozen=True)
class Frame:
    """One decoded image of a recording."""

    index: int
    stamp_ns: int
    rgb: npt.NDArray[np.uint8]
    frame_id: str


@dataclass(frozen=True)
class InputSpec:
    """One recording and how to read it.

    ``fps`` stamps the frames of an image folder; ``stills`` says an image folder holds
    independent photographs (not consecutive frames), so temporal filtering must not apply.
    ``stride`` keeps every n-th frame from ``offset`` on (source frames ``offset``, ``offset +
    stride``, ...) and ``max_frames`` caps the count (for CPU-sized runs; an offset with stride 2
    splits a folder of stills into two alternate halves).
    ``window`` reads only the kept frames ``start <= index < stop`` (``stop`` None: to the end),
    numbered as in the whole recording: a segment of a long recording for a parallel replay.
    """

    path: Path
    image_topic: str | None = None
    fps: float = 10.0
    stills: bool = False
    stride: int = 1
    max_frames: int | None = None
    window: tuple[int, int | None] | None = None
    offset: int = 0

    @property
    def kind(self) -> str:
        return input_kind(self.path)

    @property
    def first_index(self) -> int:
        """The index of the first frame this spec reads (0 unless it is a window)."""
        return self.window[0] if self.window is not None else 0

    def whole(self) -> InputSpec:
        """The same recording without a window."""
        return replace(self, window=None)


# The two halves of a folder of stills (the refinement recipe's ``split``): the images at even
# positions in name order (replay's order: image_files) are for tuning, those at odd positions for
# testing; each half is every other image, so both cover the folder alike.
SPLITS = ("tuning", "test")


def split_offset(split: str, stride: int = 1) -> int:
    """The first source image of a half (``tuning`` or ``test``) read with ``2 * stride``."""
    return SPLITS.index(split) * stride


def half_of(spec: InputSpec, split: str) -> InputSpec:
    """``spec`` reading only the ``tuning`` or ``test`` half of its images when it is a folder of
    images; anything else (``all``, a video, a bag) as it is: neighbouring frames of a recording
    are no held-out data."""
    if split not in SPLITS or not spec.path.is_dir() or input_kind(spec.path) != "images":
        return spec
    return replace(spec, stride=2 * spec.stride, offset=split_offset(split, spec.stride))


def split_of(position: int) -> str:
    """The half that the image at ``position`` (0-based, name order) of a folder belongs to."""
    return SPLITS[position % 2]


def input_kind(path: Path) -> str:
    """``bag``, ``video`` or ``images`` from what is on disk."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return "video"
        if path.suffix.lower() in (".bag", ".mcap", ".db3"):
            return "bag"
        raise InputError(f"{path}: not a bag (.bag, .mcap, .db3, or a rosbag2 folder), a video "
                         f"({', '.join(VIDEO_SUFFIXES)}) or a folder of images")
    if (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")) or any(path.glob("*.db3")):
        return "bag"
    return "images"


def _file_signature(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def fingerprint(spec: InputSpec) -> str:
    """A key that changes when the recording or the way it is read changes (for the caches)."""
    path = spec.path
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(_file_signature(file).encode())
    window = "" if spec.window is None else f"|{spec.window[0]}:{spec.window[1]}"
    offset = f"|+{spec.offset}" if spec.offset else ""  # none: the keys made before offsets existed
    digest.update(f"{spec.image_topic}|{spec.fps}|{spec.stride}|{spec.max_frames}{window}{offset}".encode())
    return digest.hexdigest()[:16]


def _keep(index: int, kept: int, spec: InputSpec) -> bool:
    """Whether source frame ``index`` is the recording's ``kept``-th frame (offset, stride, cap)."""
    return (index >= spec.offset and (index - spec.offset) % spec.stride == 0
            and (spec.max_frames is None or kept < spec.max_frames))


def _done(kept: int, spec: InputSpec) -> bool:
    """Whether no frame numbered ``kept`` or later is wanted (cap or end of the window)."""
    if spec.window is not None and spec.window[1] is not None and kept >= spec.window[1]:
        return True
    return spec.max_frames is not None and kept >= spec.max_frames


def _in_window(kept: int, spec: InputSpec) -> bool:
    """Whether the recording's ``kept``-th frame is decoded (frames before a window are skipped)."""
    return kept >= spec.first_index


def _selected(items: Iterable[Item], spec: InputSpec) -> Iterator[tuple[int, int, Item]]:
    """``(kept, source index, item)`` of the items a spec decodes: every ``stride``-th, at most
    ``max_frames``, only those in its window; stops reading once nothing later is wanted."""
    kept = 0
    for index, item in enumerate(items):
        if _done(kept, spec):
            return
        if not _keep(index, kept, spec):
            continue
        if _in_window(kept, spec):
            yield kept, index, item
        kept += 1


def _to_rgb(image: np.ndarray, encoding: str) -> npt.NDArray[np.uint8]:
    """Any decoded image as RGB uint8 (16-bit and float scaled to 0..255)."""
    if image.dtype != np.uint8:
        scaled = image.astype(np.float64)
        top = float(np.nanmax(scaled)) if scaled.size else 1.0
        image = np.clip(np.nan_to_num(scaled) * (255.0 / max(top, 1e-9)), 0, 255).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        conversion, image = cv2.COLOR_GRAY2RGB, image.reshape(image.shape[:2])
    elif encoding.startswith("rgba"):
        conversion = cv2.COLOR_RGBA2RGB
    elif encoding.startswith("rgb"):
        return np.ascontiguousarray(image, np.uint8)
    else:
        conversion = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return np.asarray(cv2.cvtColor(image, conversion), np.uint8)


def _raw_image_problem(message: Any) -> str | None:
    """Why a ``sensor_msgs/Image`` cannot give a picture, from its fields alone (None: it can)."""
    height, width, step = int(message.height), int(message.width), int(message.step)
    if height == 0 or width == 0:
        return "empty image"
    layout = ENCODINGS.get(str(message.encoding))
    if layout is None:
        return None  # cv_bridge may know it; decoding says
    row_bytes = width * layout[1] * np.dtype(layout[0]).itemsize
    size = len(message.data)
    if step < row_bytes:
        return "bad row step"
    if size < height * step:
        return "truncated image data"
    if size > height * step:
        return "image data size mismatch"
    return None


def _compressed_image_problem(message: Any) -> str | None:
    """Why a ``sensor_msgs/CompressedImage`` cannot give a picture, from its bytes (None: it may)."""
    data = bytes(message.data)
    if not data:
        return "empty image"
    if jpeg_is_truncated(data):
        return "truncated JPEG"
    return None


def _describe(message: Any, compressed: bool) -> str:
    if compressed:
        return f"{message.format or 'no format'}, {len(message.data)} bytes"
    return (f"{int(message.width)}x{int(message.height)} {message.encoding}, step {int(message.step)}, "
            f"{len(message.data)} bytes")


def message_rgb(message: Any, msgtype: str) -> npt.NDArray[np.uint8]:
    """The RGB pixels of a deserialised ``Image`` or ``CompressedImage``.

    Raises :class:`BadFrameError` with the reason the frame cannot be used.
    """
    from hand_pose_refiner.ros.images import compressed_to_numpy, image_to_numpy

    compressed = msgtype.endswith("CompressedImage")
    problem = _compressed_image_problem(message) if compressed else _raw_image_problem(message)
    if problem is not None:
        raise BadFrameError(problem, _describe(message, compressed))
    try:
        if compressed:
            return _to_rgb(compressed_to_numpy(message), "bgr8")
        pixels, encoding = image_to_numpy(message)
        return _to_rgb(pixels, encoding)
    except UnsupportedEncodingError as exc:
        raise BadFrameError("unsupported encoding", str(exc)) from exc
    except _PIXEL_ERRORS as exc:
        reason = "undecodable compressed image" if compressed else "undecodable image"
        raise BadFrameError(reason, str(exc)) from exc


def _choose_topic(path: Path, topics: dict[str, str], requested: str | None) -> str:
    """The requested topic (checked), or the bag's only image topic; refuses ambiguity."""
    topics = {topic: msgtype for topic, msgtype in topics.items() if msgtype in IMAGE_TYPES}
    if requested is not None:
        if requested not in topics:
            raise InputError(f"{path}: no image topic {requested!r}; image topics: "
                             f"{', '.join(sorted(topics)) or 'none'}")
        return requested
    if len(topics) == 1:
        return next(iter(topics))
    if not topics:
        raise InputError(f"{path}: no sensor_msgs/Image or CompressedImage topic")
    raise InputError(f"{path}: several image topics, choose one with --image-topic: "
                     f"{', '.join(sorted(topics))}")


class _IndexedBag:
    """A bag rosbags opens whole (rosbag2 sqlite3 or MCAP, ROS 1), behind the salvage interface."""

    def __init__(self, reader: AnyReader) -> None:
        self.reader = reader
        self.topics = {c.topic: c.msgtype for c in reader.connections}

    def messages(self, topic: str) -> Iterator[tuple[str, int, bytes]]:
        connections = [c for c in self.reader.connections if c.topic == topic]
        for connection, log_time, raw in self.reader.messages(connections=connections):
            yield connection.msgtype, int(log_time), raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.reader.deserialize(raw, msgtype)

    def close(self) -> None:
        self.reader.close()


def _open_bag(path: Path) -> tuple[_IndexedBag | Any, str | None]:
    """The bag, and why it could only be opened from its start (an MCAP cut short), or None.

    Raises :class:`InputError` when no part of it can be read.
    """
    from hand_pose_refiner.ros.bags import TruncatedMcap

    try:
        reader = AnyReader([path])  # it reads the bag's metadata here already
        reader.open()
        return _IndexedBag(reader), None
    except _BAG_ERRORS as exc:
        problem = f"{exc}" or type(exc).__name__
        try:
            salvaged = TruncatedMcap(path)
        except _BAG_ERRORS:
            raise InputError(f"{path}: cannot read bag: {problem}") from exc
        if not salvaged.topics:
            salvaged.close()
            raise InputError(f"{path}: cannot read bag: {problem}") from exc
        return salvaged, problem


def image_topics(path: Path) -> dict[str, str]:
    """Every image topic of a bag with its message type."""
    bag, _ = _open_bag(path)
    try:
        return {topic: msgtype for topic, msgtype in bag.topics.items() if msgtype in IMAGE_TYPES}
    finally:
        bag.close()


def choose_image_topic(path: Path, requested: str | None) -> str:
    """The requested topic (checked), or the bag's only image topic; refuses ambiguity."""
    return _choose_topic(path, image_topics(path), requested)


def _bag_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    bag, opened_from_start = _open_bag(spec.path)
    read = 0
    try:
        topic = _choose_topic(spec.path, bag.topics, spec.image_topic)
        for kept, _, (msgtype, log_time, raw) in _selected(bag.messages(topic), spec):
            read += 1
            frame = _bag_frame(bag, kept, msgtype, log_time, raw, report)
            if frame is not None:
                yield frame
        if opened_from_start is not None:  # read to the end of a file whose summary is missing
            report.damage = f"no index ({opened_from_start}); read {read} frames from its start"
    except _BAG_ERRORS as exc:
        if read == 0 and not report.skips:
            raise InputError(f"{spec.path}: cannot read bag (truncated or corrupt?): {exc}") from exc
        report.damage = f"unreadable after {read} frames ({exc}); the frames before are kept"
    finally:
        bag.close()


def _bag_frame(bag: Any, kept: int, msgtype: str, log_time: int, raw: bytes,
               report: ReadReport) -> Frame | None:
    """One bag message as a frame, or None (counted in ``report``) when it cannot be one."""
    try:
        message = bag.deserialize(raw, msgtype)
    except _MESSAGE_ERRORS as exc:
        report.skip(kept, "undeserialisable message", f"{type(exc).__name__}: {exc}")
        return None
    try:
        rgb = message_rgb(message, msgtype)
    except BadFrameError as skipped:
        report.skip(kept, skipped.reason, skipped.detail)
        return None
    stamp = message.header.stamp
    stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec) or int(log_time)
    return Frame(kept, stamp_ns, rgb, str(message.header.frame_id))


def _video_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(spec.path))
    if not capture.isOpened():
        raise InputError(f"{spec.path}: cannot open video")
    try:
        kept, index, last = 0, 0, -1
        while not _done(kept, spec):
            # grab() advances without converting the picture: frames before a window cost less.
            if not capture.grab():
                break
            stamp_ns = round(capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
            stamp_ns = max(stamp_ns, last + 1)  # some containers repeat times; keep them increasing
            last = stamp_ns
            if _keep(index, kept, spec):
                if _in_window(kept, spec):
                    ok, bgr = capture.retrieve()
                    if ok and bgr is not None and bgr.size:
                        rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)
                        yield Frame(kept, stamp_ns, rgb, spec.path.stem)
                    else:
                        report.skip(kept, "undecodable video frame", "the decoder returned no picture")
                kept += 1
            index += 1
        if index == 0:
            raise InputError(f"{spec.path}: no frame could be decoded (truncated or corrupt video?)")
    finally:
        capture.release()


def image_files(folder: Path) -> list[Path]:
    """The images of a folder in name order (natural: frame2 before frame10)."""
    import re

    def natural(path: Path) -> list[object]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural)


def image_file_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """The RGB pixels of an image file; raises :class:`BadFrameError` (empty, truncated JPEG,
    undecodable) or ``OSError`` (unreadable)."""
    data = path.read_bytes()
    if not data:
        raise BadFrameError("empty image", "a zero-byte file")
    if jpeg_is_truncated(data):
        raise BadFrameError("truncated JPEG", f"{len(data)} bytes, no end marker after the last scan")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or not bgr.size:
        raise BadFrameError("undecodable image file", f"{len(data)} bytes OpenCV cannot decode")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


def _folder_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    files = image_files(spec.path)
    if not files:
        raise InputError(f"{spec.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    period_ns = round(1e9 / spec.fps)
    for kept, index, file in _selected(files, spec):
        try:
            rgb = image_file_rgb(file)
        except BadFrameError as skipped:
            report.skip(kept, skipped.reason, f"{file.name}: {skipped.detail}")
            continue
        except OSError as exc:
            report.skip(kept, "unreadable image file", f"{file.name}: {exc.strerror or exc}")
            continue
        yield Frame(kept, (index + 1) * period_ns, rgb, spec.path.name)


def _kept_count(source_frames: int, spec: InputSpec) -> int:
    kept = -(-max(source_frames - spec.offset, 0) // spec.stride)
    return kept if spec.max_frames is None else min(kept, spec.max_frames)


def count_frames(spec: InputSpec) -> int | None:
    """How many frames the whole recording gives (stride and cap applied), without decoding.

    From the bag's index, the folder's listing or the video container's frame count; None
    where the container does not say (some WebM files) or the bag has no index (cut short).
    Raises :class:`InputError` on a recording that cannot be opened.
    """
    kind = spec.kind
    if kind == "images":
        return _kept_count(len(image_files(spec.path)), spec)
    if kind == "bag":
        bag, opened_from_start = _open_bag(spec.path)
        try:
            topic = _choose_topic(spec.path, bag.topics, spec.image_topic)
            if opened_from_start is not None:
                return None
            total = sum(c.msgcount for c in bag.reader.connections if c.topic == topic)
        finally:
            bag.close()
        return _kept_count(total, spec)
    capture = cv2.VideoCapture(str(spec.path))
    try:
        if not capture.isOpened():
            raise InputError(f"{spec.path}: cannot open video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return _kept_count(total, spec) if total > 0 else None


def read_frames(spec: InputSpec, report: ReadReport | None = None) -> Iterator[Frame]:
    """The frames of one recording, oldest first.

    Frames that cannot be decoded are skipped and counted in ``report``; raises
    :class:`InputError` when nothing of the recording can be read.
    """
    if (spec.stride < 1 or spec.fps <= 0 or spec.offset < 0
            or (spec.max_frames is not None and spec.max_frames < 1)):
        raise InputError(f"{spec.path}: stride and max_frames must be >= 1, offset >= 0 and fps > 0")
    if spec.window is not None and (spec.window[0] < 0 or (spec.window[1] is not None
                                                            and spec.window[1] < spec.window[0])):
        raise InputError(f"{spec.path}: bad frame window {spec.window}")
    readers = {"bag": _bag_frames, "video": _video_frames, "images": _folder_frames}
    return readers[spec.kind](spec, report if report is not None else ReadReport())
