"""Raw and compressed image buffers <-> numpy arrays, without ROS.

The fields mirror ``sensor_msgs/Image`` (height, width, encoding, step, is_bigendian, data) and
``sensor_msgs/CompressedImage`` (format, data), so the ROS layer only copies fields across. Rows
may be padded (``step`` larger than ``width * channels * itemsize``); the padding is dropped on
decode. Arrays keep the channel order of their encoding: a bgr8 image decodes to BGR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.errors import ImageSizeError, InputError, UnsupportedEncodingError

# encoding -> (numpy dtype, channels); names as in sensor_msgs/image_encodings.hpp.
ENCODINGS: dict[str, tuple[type[np.generic], int]] = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bgr8": (np.uint8, 3),
    "rgb8": (np.uint8, 3),
    "bgra8": (np.uint8, 4),
    "rgba8": (np.uint8, 4),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "8UC4": (np.uint8, 4),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}

# The OpenCV conversion to RGB of each 8-bit encoding (None: already RGB, copied); 8UCn are read
# as OpenCV's default channel order, BGR(A).
_TO_RGB: dict[str, str | None] = {
    "rgb8": None, "rgba8": "COLOR_RGBA2RGB", "bgr8": "COLOR_BGR2RGB", "bgra8": "COLOR_BGRA2RGB",
    "8UC3": "COLOR_BGR2RGB", "8UC4": "COLOR_BGRA2RGB", "mono8": "COLOR_GRAY2RGB", "8UC1": "COLOR_GRAY2RGB",
}

COMPRESSED_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class RawImage:
    """A raw image buffer with the fields of ``sensor_msgs/Image``."""

    height: int
    width: int
    encoding: str
    step: int
    is_bigendian: bool
    data: bytes


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        dtype, channels = ENCODINGS[encoding]
    except KeyError:
        raise UnsupportedEncodingError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None
    return np.dtype(dtype), channels


def decode_raw(height: int, width: int, encoding: str, step: int, is_bigendian: bool,
               data: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> np.ndarray:
    """The image as an ``(h, w)`` or ``(h, w, c)`` array in native byte order (a copy).

    Raises :class:`UnsupportedEncodingError` for an unknown encoding and :class:`ImageSizeError`
    when ``step`` is too small for a row or ``data`` is not ``height * step`` bytes.
    """
    dtype, channels = _layout(encoding)
    row_bytes = width * channels * dtype.itemsize
    if height < 0 or width < 0:
        raise ImageSizeError(f"image size must not be negative, got {width}x{height}")
    if step < row_bytes:
        raise ImageSizeError(f"step {step} is smaller than one {encoding} row of width {width} "
                             f"({row_bytes} bytes)")
    # An ndarray is a buffer; numpy's stubs declare it one only for Python 3.12 and later.
    buffer = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # type: ignore[arg-type]
    if buffer.size != height * step:
        raise ImageSizeError(f"{encoding} image data has {buffer.size} bytes, expected height * step "
                             f"= {height} * {step} = {height * step}")
    rows = buffer.reshape(height, step)[:, :row_bytes]
    byte_order: Literal[">", "<"] = ">" if is_bigendian else "<"
    pixels = rows.copy().view(dtype.newbyteorder(byte_order) if dtype.itemsize > 1 else dtype)
    image = pixels.astype(dtype.newbyteorder("="), copy=False).reshape(height, width, channels)
    return image[:, :, 0] if channels == 1 else image


def encode_raw(image: npt.ArrayLike, encoding: str, step: int | None = None,
               is_bigendian: bool = False) -> RawImage:
    """A raw buffer of ``image`` in ``encoding``; rows padded with zeros to ``step`` if given."""
    dtype, channels = _layout(encoding)
    array = np.asarray(image)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        shape = "(h, w)" if channels == 1 else f"(h, w, {channels})"
        raise ImageSizeError(f"{encoding} needs an array of shape {shape}, got {array.shape}")
    if array.dtype != dtype:
        raise UnsupportedEncodingError(f"{encoding} needs dtype {dtype}, got {array.dtype}")
    height, width = array.shape[:2]
    row_bytes = width * channels * dtype.itemsize
    step = row_bytes if step is None else step
    if step < row_bytes:
        raise ImageSizeError(f"step {step} is smaller than one {encoding} row of width {width} "
                             f"({row_bytes} bytes)")
    ordered = array.astype(dtype.newbyteorder(">" if is_bigendian else "<"), copy=False)
    rows = np.zeros((height, step), np.uint8)
    rows[:, :row_bytes] = np.ascontiguousarray(ordered).view(np.uint8).reshape(height, row_bytes)
    return RawImage(height, width, encoding, step, is_bigendian, rows.tobytes())


def to_rgb(image: np.ndarray, encoding: str) -> npt.NDArray[np.uint8]:
    """A new ``(h, w, 3)`` uint8 RGB array of an 8-bit image in ``encoding`` (what the models take).

    One OpenCV conversion (it runs without the GIL and costs a fraction of a numpy channel
    gather: the live nodes convert every camera frame)."""
    import cv2

    if encoding not in _TO_RGB:
        raise UnsupportedEncodingError(f"cannot convert {encoding!r} to RGB; use an 8-bit colour or "
                                       f"mono encoding")
    conversion = _TO_RGB[encoding]
    if conversion is None:
        return np.array(image, dtype=np.uint8, order="C", copy=True)
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(image), getattr(cv2, conversion)), np.uint8)


def decode_compressed(format_: str, data: bytes | bytearray | memoryview) -> npt.NDArray[np.generic]:
    """A JPEG or PNG buffer as a BGR (or mono) array: uint8, uint16 for a 16-bit PNG.

    A JPEG cut short is refused (:func:`jpeg_is_truncated`) rather than decoded with its missing
    rows filled with grey, as OpenCV would.

    ``format_`` is ``sensor_msgs/CompressedImage.format``, e.g. ``"jpeg"`` or
    ``"bgr8; jpeg compressed bgr8"``; only the compression name after ``;`` matters.
    """
    import cv2

    name = _compression_name(format_)
    buffer = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if jpeg_is_truncated(buffer.tobytes()):
        raise ImageSizeError(f"truncated JPEG: {buffer.size} bytes with no end marker after the last scan")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise ImageSizeError(f"cannot decode {buffer.size} bytes as {name}")
    return image


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether ``data`` is a JPEG whose last scan has no end-of-image marker after it (cut short).

    Entropy-coded data stuffs every 0xFF byte, so the end marker FF D9 cannot occur inside a scan;
    comparing with the last start-of-scan FF DA also ignores an embedded EXIF thumbnail's own end
    marker. Bytes that are not a JPEG, or a JPEG without a scan, are not judged here.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.rfind(b"\xff\xd9") < last_scan


def encode_compressed(image: npt.NDArray[np.uint8], format_: str = "jpeg", quality: int = 90) -> bytes:
    """A BGR (or mono) uint8 array compressed as ``jpeg`` or ``png``."""
    import cv2

    name = _compression_name(format_)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if name == "jpeg" else []
    ok, buffer = cv2.imencode(".jpg" if name == "jpeg" else ".png", np.asarray(image), params)
    if not ok:
        raise ImageSizeError(f"cannot encode an array of shape {np.shape(image)} as {name}")
    return buffer.tobytes()


def _compression_name(format_: str) -> str:
    name = format_.split(";")[-1].strip().lower().split(" ")[0]
    name = {"jpg": "jpeg"}.get(name, name)
    if name not in COMPRESSED_FORMATS:
        raise UnsupportedEncodingError(f"unsupported compressed image format {format_!r}; "
                                       f"supported: {', '.join(COMPRESSED_FORMATS)}")
    return name


def read_bgr(path: str | Path) -> npt.NDArray[np.uint8]:
    """An image file's 8-bit colour pixels in BGR order (what ``cv2.imread`` gives);
    :class:`~hand_pose_refiner.errors.InputError` when it cannot be read (missing, or not an image)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: cannot read an image from it (missing, or not an image)")
    return np.asarray(image, np.uint8)


def read_rgb(path: str | Path) -> npt.NDArray[np.uint8]:
    """An image file's 8-bit colour pixels in RGB order (what the models take); as :func:`read_bgr`."""
    import cv2

    return np.asarray(cv2.cvtColor(read_bgr(path), cv2.COLOR_BGR2RGB), np.uint8)
