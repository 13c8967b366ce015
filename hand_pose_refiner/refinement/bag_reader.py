"""Reading the image frames of a bag (rosbag2 sqlite3 or MCAP, ROS 1), whole or salvaged.

A message that cannot give a picture (empty, short buffer, undecodable or truncated JPEG, ...)
is skipped and counted by reason; a bag that fails part-way gives the frames before the
damage; an MCAP cut short (no summary) is read from its start. A bag is refused with an
:class:`~hand_pose_refiner.errors.InputError` naming the file only when nothing in it can be
read (corrupt, no or several image topics).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError

from hand_pose_refiner.errors import BadFrameError, ImageError, InputError, UnsupportedEncodingError
from hand_pose_refiner.images import ENCODINGS, jpeg_is_truncated
from hand_pose_refiner.refinement.frame_selection import kept_count, select_frames
from hand_pose_refiner.refinement.input_spec import Frame, InputSpec, ReadReport

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# What a broken bag raises while being opened or read: refused as an InputError naming the file.
_BAG_ERRORS = (AnyReaderError, Rosbag1ReaderError, Rosbag2ReaderError, OSError, ImageError,
               struct.error, sqlite3.DatabaseError, KeyError, EOFError)
# What one message that cannot be deserialised raises: that frame is skipped.
_MESSAGE_ERRORS = (struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError, AssertionError)
# What one image that cannot be converted raises: that frame is skipped.
_PIXEL_ERRORS = (ImageError, cv2.error, ValueError)


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


def bag_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    """The frames of a bag, oldest first (see the module docstring for what is skipped)."""
    bag, opened_from_start = _open_bag(spec.path)
    read = 0
    try:
        topic = _choose_topic(spec.path, bag.topics, spec.image_topic)
        for kept, _, (msgtype, log_time, raw) in select_frames(bag.messages(topic), spec):
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


def bag_frame_count(spec: InputSpec) -> int | None:
    """How many frames a bag gives (stride and cap applied), from its index; None when it has
    none (an MCAP cut short). Raises :class:`InputError` when it cannot be opened."""
    bag, opened_from_start = _open_bag(spec.path)
    try:
        topic = _choose_topic(spec.path, bag.topics, spec.image_topic)
        if opened_from_start is not None:
            return None
        total = sum(c.msgcount for c in bag.reader.connections if c.topic == topic)
    finally:
        bag.close()
    return kept_count(total, spec)
