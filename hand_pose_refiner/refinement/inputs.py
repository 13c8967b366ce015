"""Readers for every kind of recording replay accepts: bags, videos and folders of images.

Each reader yields RGB frames with real time stamps, in order, so that the temporal filter sees
what the live nodes would have seen. A recording that cannot be read (missing, truncated,
corrupt, or with no or several image topics) is refused with an :class:`InputError` naming the
file, so the caller can skip it and go on with the other inputs.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError

from hand_pose_refiner.errors import ImageError, InputError

Item = TypeVar("Item")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# What a broken bag raises while being opened or read: refused as an InputError naming the file.
_BAG_ERRORS = (AnyReaderError, Rosbag1ReaderError, Rosbag2ReaderError, OSError, ImageError,
               struct.error, sqlite3.DatabaseError, KeyError, EOFError)


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
    ``stride`` keeps every n-th frame and ``max_frames`` caps the count (for CPU-sized runs).
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
    digest.update(f"{spec.image_topic}|{spec.fps}|{spec.stride}|{spec.max_frames}{window}".encode())
    return digest.hexdigest()[:16]


def _keep(index: int, kept: int, spec: InputSpec) -> bool:
    """Whether source frame ``index`` is the recording's ``kept``-th frame (stride, cap)."""
    return index % spec.stride == 0 and (spec.max_frames is None or kept < spec.max_frames)


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
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if encoding.startswith("rgba"):
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    if encoding.startswith("rgb"):
        return np.ascontiguousarray(image)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_topics(path: Path) -> dict[str, str]:
    """Every image topic of a bag with its message type."""
    try:
        with AnyReader([path]) as reader:
            return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}
    except _BAG_ERRORS as exc:
        raise InputError(f"{path}: cannot read bag: {exc}") from exc


def choose_image_topic(path: Path, requested: str | None) -> str:
    """The requested topic (checked), or the bag's only image topic; refuses ambiguity."""
    topics = image_topics(path)
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


def _bag_frames(spec: InputSpec) -> Iterator[Frame]:
    from hand_pose_refiner.ros.images import compressed_to_numpy, image_to_numpy

    topic = choose_image_topic(spec.path, spec.image_topic)
    try:
        with AnyReader([spec.path]) as reader:
            connections = [c for c in reader.connections if c.topic == topic]
            messages = reader.messages(connections=connections)
            for kept, _, (connection, log_time, raw) in _selected(messages, spec):
                message = reader.deserialize(raw, connection.msgtype)
                if connection.msgtype.endswith("CompressedImage"):
                    rgb = _to_rgb(compressed_to_numpy(message), "bgr8")
                else:
                    pixels, encoding = image_to_numpy(message)
                    rgb = _to_rgb(pixels, encoding)
                stamp = message.header.stamp
                stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec) or int(log_time)
                yield Frame(kept, stamp_ns, rgb, str(message.header.frame_id))
    except _BAG_ERRORS as exc:
        raise InputError(f"{spec.path}: cannot read bag (truncated or corrupt?): {exc}") from exc


def _video_frames(spec: InputSpec) -> Iterator[Frame]:
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
                    if not ok:
                        break
                    yield Frame(kept, stamp_ns, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), spec.path.stem)
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


def _folder_frames(spec: InputSpec) -> Iterator[Frame]:
    files = image_files(spec.path)
    if not files:
        raise InputError(f"{spec.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    period_ns = round(1e9 / spec.fps)
    for kept, index, file in _selected(files, spec):
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{file}: cannot decode image")
        yield Frame(kept, (index + 1) * period_ns, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), spec.path.name)


def _kept_count(source_frames: int, spec: InputSpec) -> int:
    kept = -(-source_frames // spec.stride)
    return kept if spec.max_frames is None else min(kept, spec.max_frames)


def count_frames(spec: InputSpec) -> int | None:
    """How many frames the whole recording gives (stride and cap applied), without decoding.

    From the bag's index, the folder's listing or the video container's frame count; None
    where the container does not say (some WebM files). Raises :class:`InputError` on a
    recording that cannot be opened.
    """
    kind = spec.kind
    if kind == "images":
        return _kept_count(len(image_files(spec.path)), spec)
    if kind == "bag":
        topic = choose_image_topic(spec.path, spec.image_topic)
        try:
            with AnyReader([spec.path]) as reader:
                total = sum(c.msgcount for c in reader.connections if c.topic == topic)
        except _BAG_ERRORS as exc:
            raise InputError(f"{spec.path}: cannot read bag: {exc}") from exc
        return _kept_count(total, spec)
    capture = cv2.VideoCapture(str(spec.path))
    try:
        if not capture.isOpened():
            raise InputError(f"{spec.path}: cannot open video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return _kept_count(total, spec) if total > 0 else None


def read_frames(spec: InputSpec) -> Iterator[Frame]:
    """The frames of one recording, oldest first; raises :class:`InputError` on a bad one."""
    if spec.stride < 1 or spec.fps <= 0:
        raise InputError(f"{spec.path}: stride must be >= 1 and fps > 0")
    if spec.window is not None and (spec.window[0] < 0 or (spec.window[1] is not None
                                                            and spec.window[1] < spec.window[0])):
        raise InputError(f"{spec.path}: bad frame window {spec.window}")
    readers = {"bag": _bag_frames, "video": _video_frames, "images": _folder_frames}
    return readers[spec.kind](spec)
