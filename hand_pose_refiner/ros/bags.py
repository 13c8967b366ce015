"""rosbag2 I/O (sqlite3 and mcap) with this package's message types, through rosbags.

rosbags is pure Python and needs no ROS install, so the offline tools read and write bags that
``ros2 bag play``, Foxglove and rclpy's ``deserialize_message`` all understand. The custom types
are registered from the ``.msg`` files in ``msg/`` (the same files colcon generates code from),
and every bag stores their definitions so readers need not have this package.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapReader, read_sized
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.resources import find_share_file
from hand_pose_refiner.ros.conversions import frame_hands_to_message, message_to_frame_hands
from hand_pose_refiner.ros.images import numpy_to_compressed, numpy_to_image
from hand_pose_refiner.ros.interfaces import MessageTypes

PACKAGE = "hand_pose_refiner"
MESSAGE_NAMES = ("HandPose", "HandPoseArray", "HandActivity", "HandDetection", "HandDetectionArray")
HAND_POSE_ARRAY = f"{PACKAGE}/msg/HandPoseArray"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"

Storage = Literal["mcap", "sqlite3"]
MCAP_MAGIC = b"\x89MCAP0\r\n"
_PLUGINS: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def typestore() -> Typestore:
    """A ROS 2 Kilted typestore with the hand_pose_refiner messages registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    definitions: dict[str, Any] = {}
    for name in MESSAGE_NAMES:
        text = find_share_file(f"msg/{name}.msg").read_text()
        definitions.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    store.register(definitions)
    return store


def rosbags_message_types(store: Typestore) -> MessageTypes:
    """The rosbags classes of the messages the conversions build."""
    types = store.types
    return MessageTypes(
        HandPose=types[f"{PACKAGE}/msg/HandPose"],
        HandPoseArray=types[HAND_POSE_ARRAY],
        HandActivity=types[f"{PACKAGE}/msg/HandActivity"],
        Header=types["std_msgs/msg/Header"],
        Time=types["builtin_interfaces/msg/Time"],
        Image=types[IMAGE],
        CompressedImage=types[COMPRESSED_IMAGE],
        HandDetection=types[f"{PACKAGE}/msg/HandDetection"],
        HandDetectionArray=types[f"{PACKAGE}/msg/HandDetectionArray"],
    )


class BagWriter:
    """Writes images and hand poses to a new rosbag2, atomically.

    The bag is written as ``.<name>.partial/<name>`` beside ``path`` and moved to ``path`` on a
    clean close, so an interrupted run never leaves a truncated bag where a finished one is
    expected, and the finished bag's data file carries the bag's own name (``<name>.mcap``).
    """

    def __init__(self, path: str | Path, storage: Storage = "mcap") -> None:
        if storage not in _PLUGINS:
            raise ValueError(f"unknown bag storage {storage!r}; use one of {', '.join(_PLUGINS)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already; choose a new output path")
        self._scratch = self.path.with_name(f".{self.path.name}.partial")
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._partial = self._scratch / self.path.name
        self.store = typestore()
        self.types = rosbags_message_types(self.store)
        self._writer = Writer(self._partial, version=9, storage_plugin=_PLUGINS[storage])
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._writer.close()
        if exc_type is None:
            self._partial.rename(self.path)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def write_message(self, topic: str, msgtype: str, message: Any, stamp_ns: int) -> None:
        """Any message of the store's types, as given (no check of its fields)."""
        self._write(topic, msgtype, message, stamp_ns)

    def _write(self, topic: str, msgtype: str, message: Any, stamp_ns: int) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=self.store)
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise ValueError(f"topic {topic} carries {connection.msgtype}, cannot add {msgtype}")
        self._writer.write(connection, int(stamp_ns), self.store.serialize_cdr(message, msgtype))

    def write_image(self, topic: str, image: np.ndarray, encoding: str, stamp_ns: int,
                    frame_id: str) -> None:
        """One ``sensor_msgs/Image``, recorded at its own stamp."""
        self._write(topic, IMAGE, numpy_to_image(image, encoding, stamp_ns, frame_id, self.types),
                    stamp_ns)

    def write_compressed_image(self, topic: str, image: np.ndarray, stamp_ns: int, frame_id: str,
                               format_: str = "jpeg") -> None:
        """One ``sensor_msgs/CompressedImage`` of a BGR array."""
        message = numpy_to_compressed(image, stamp_ns, frame_id, self.types, format_)
        self._write(topic, COMPRESSED_IMAGE, message, stamp_ns)

    def write_hands(self, topic: str, hands: FrameHands) -> None:
        """One ``HandPoseArray``, recorded at the stamp of its image."""
        self._write(topic, HAND_POSE_ARRAY, frame_hands_to_message(hands, self.types), hands.stamp_ns)


@dataclass(frozen=True)
class BagMessage:
    """One message read from a bag: topic, type, record time, raw CDR bytes and decoded object."""

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes
    message: Any


def read_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Every message of a bag (rosbag2 or ROS 1), in record order, optionally of some topics.

    Types unknown to the default store are read from the definitions stored in the bag.
    """
    with AnyReader([Path(path)], default_typestore=typestore()) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, log_time, raw in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, int(log_time), bytes(raw),
                             reader.deserialize(raw, connection.msgtype))


def read_hands(path: str | Path, topic: str) -> Iterator[FrameHands]:
    """The ``HandPoseArray`` messages of one topic as :class:`FrameHands`."""
    for item in read_messages(path, [topic]):
        yield message_to_frame_hands(item.message)


class TruncatedMcap:
    """The readable head of an MCAP bag whose end is damaged (an interrupted recording).

    rosbags opens an MCAP file from the summary at its end; a file cut short has none. This
    reads the records from the start instead (rosbags' own record parser, a linear scan), up to
    the first damaged record: :meth:`messages` then raises ``ReaderError`` or ``struct.error``,
    so the caller keeps what came before and says where it stopped. It reads rosbags' McapReader
    attributes (``bio``, ``data_start``, ``data_end``), which is why setup.py caps rosbags below
    0.12; test_bad_input reads a cut-short bag through it.
    """

    def __init__(self, path: Path) -> None:
        files = [path] if path.is_file() else sorted(path.glob("*.mcap"))
        if not files:
            raise ReaderError(f"{path}: no MCAP file")
        self._readers: list[McapReader] = []
        try:
            for file in files:
                self._readers.append(self._scan(file))
        except BaseException:
            self.close()
            raise
        self.store = typestore()

    @staticmethod
    def _scan(file: Path) -> McapReader:
        reader = McapReader(file)
        reader.bio = file.open("rb")
        try:
            if reader.bio.read(8) != MCAP_MAGIC or reader.bio.read(1) != b"\x01":
                raise ReaderError(f"{file}: not an MCAP file")
            read_sized(reader.bio)  # the header record
        except BaseException:
            reader.bio.close()
            raise
        reader.data_start = reader.bio.tell()
        reader.data_end = file.stat().st_size
        with contextlib.suppress(ReaderError, struct.error):
            reader.meta_scan()  # fills the schemas and channels met before the damage
        return reader

    def __enter__(self) -> TruncatedMcap:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def topics(self) -> dict[str, str]:
        """Every topic found before the damage, with its message type."""
        return {c.topic: c.msgtype for reader in self._readers for c in reader.connections}

    def messages(self, topic: str) -> Iterator[tuple[str, int, bytes]]:
        """``(msgtype, log time, raw CDR)`` of one topic in file order, up to the damage."""
        for reader in self._readers:
            connections = [c for c in reader.connections if c.topic == topic]
            for connection, log_time, raw in reader.messages_scan(connections):
                yield connection.msgtype, int(log_time), raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.store.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        for reader in self._readers:
            if reader.bio is not None:
                reader.bio.close()
