"""Reading a folder of images: its image files in natural name order, stamped at ``fps``.

An image file that cannot be read or decoded (empty, truncated JPEG, undecodable) is skipped
and counted; a folder is refused with an :class:`~hand_pose_refiner.errors.InputError` only
when it holds no images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.errors import BadFrameError, InputError
from hand_pose_refiner.images import jpeg_is_truncated
from hand_pose_refiner.refinement.frame_selection import select_frames
from hand_pose_refiner.refinement.input_spec import IMAGE_SUFFIXES, Frame, InputSpec, ReadReport


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


def folder_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    """The images of a folder as frames, in name order, the n-th stamped n / fps seconds."""
    files = image_files(spec.path)
    if not files:
        raise InputError(f"{spec.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    period_ns = round(1e9 / spec.fps)
    for kept, index, file in select_frames(files, spec):
        try:
            rgb = image_file_rgb(file)
        except BadFrameError as skipped:
            report.skip(kept, skipped.reason, f"{file.name}: {skipped.detail}")
            continue
        except OSError as exc:
            report.skip(kept, "unreadable image file", f"{file.name}: {exc.strerror or exc}")
            continue
        yield Frame(kept, (index + 1) * period_ns, rgb, spec.path.name)
