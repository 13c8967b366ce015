"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` <-> numpy arrays.

The core codec (:mod:`hand_pose_refiner.images`) handles every encoding in
:data:`~hand_pose_refiner.images.ENCODINGS`, honouring ``step`` and ``is_bigendian``. Other
encodings (Bayer, YUV) go through ``cv_bridge`` when it imports (it comes with a ROS install),
and are refused otherwise.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from hand_pose_refiner.errors import UnsupportedEncodingError
from hand_pose_refiner.images import (
    ENCODINGS,
    decode_compressed,
    decode_raw,
    encode_compressed,
    encode_raw,
)
from hand_pose_refiner.ros.conversions import header_message
from hand_pose_refiner.ros.interfaces import MessageTypes


def _is_rosbags_class(message_class: Any) -> bool:
    return hasattr(message_class, "__msgtype__")


def _byte_field(message_class: Any, data: bytes) -> Any:
    """``uint8[]`` field value in the fastest form each library accepts."""
    if _is_rosbags_class(message_class):
        return np.frombuffer(data, dtype=np.uint8)
    return array.array("B", data)


def image_to_numpy(message: Any) -> tuple[np.ndarray, str]:
    """The pixels of a ``sensor_msgs/Image`` and the encoding they are in.

    Encodings the core does not know are converted to bgr8 by ``cv_bridge`` if it imports.
    """
    encoding = str(message.encoding)
    if encoding not in ENCODINGS:
        bridged = _decode_with_cv_bridge(message)
        if bridged is not None:
            return bridged, "bgr8"
    image = decode_raw(int(message.height), int(message.width), encoding, int(message.step),
                       bool(message.is_bigendian), _as_bytes(message.data))
    return image, encoding


def numpy_to_image(image: np.ndarray, encoding: str, stamp_ns: int, frame_id: str,
                   types: MessageTypes, step: int | None = None) -> Any:
    """A ``sensor_msgs/Image`` of ``image`` (rows padded to ``step`` when given)."""
    raw = encode_raw(image, encoding, step=step)
    return types.Image(header=header_message(types, stamp_ns, frame_id), height=raw.height,
                       width=raw.width, encoding=raw.encoding, is_bigendian=int(raw.is_bigendian),
                       step=raw.step, data=_byte_field(types.Image, raw.data))


def compressed_to_numpy(message: Any) -> np.ndarray:
    """The BGR (or mono) pixels of a ``sensor_msgs/CompressedImage`` (jpeg or png)."""
    return decode_compressed(str(message.format), _as_bytes(message.data))


def numpy_to_compressed(image: np.ndarray, stamp_ns: int, frame_id: str, types: MessageTypes,
                        format_: str = "jpeg", quality: int = 90) -> Any:
    """A ``sensor_msgs/CompressedImage`` of a BGR (or mono) uint8 array."""
    data = encode_compressed(image, format_, quality)
    return types.CompressedImage(header=header_message(types, stamp_ns, frame_id), format=format_,
                                 data=_byte_field(types.CompressedImage, data))


def _as_bytes(data: Any) -> bytes | bytearray | memoryview:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, array.array):
        return memoryview(data).cast("B")
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).data.cast("B")
    return bytes(data)


def _decode_with_cv_bridge(message: Any) -> np.ndarray | None:
    """bgr8 pixels through cv_bridge, or None when cv_bridge is not installed."""
    try:
        from cv_bridge import CvBridge, CvBridgeError
    except ImportError:
        return None
    try:
        return np.asarray(CvBridge().imgmsg_to_cv2(message, desired_encoding="bgr8"))
    except CvBridgeError as exc:
        raise UnsupportedEncodingError(f"cv_bridge cannot convert encoding "
                                       f"{message.encoding!r}: {exc}") from exc
