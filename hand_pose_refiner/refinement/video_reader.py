"""Reading the frames of a video file, stamped with the container's presentation times.

A frame the decoder returns no picture for is skipped and counted; a video is refused with an
:class:`~hand_pose_refiner.errors.InputError` only when it cannot be opened or no frame of it
decodes.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from hand_pose_refiner.errors import InputError
from hand_pose_refiner.refinement.frame_selection import in_window, is_kept, kept_count, reading_done
from hand_pose_refiner.refinement.input_spec import Frame, InputSpec, ReadReport


def video_frames(spec: InputSpec, report: ReadReport) -> Iterator[Frame]:
    """The frames of a video, oldest first; stamps kept increasing where the container repeats them."""
    capture = cv2.VideoCapture(str(spec.path))
    if not capture.isOpened():
        raise InputError(f"{spec.path}: cannot open video")
    try:
        kept, index, last = 0, 0, -1
        while not reading_done(kept, spec):
            # grab() advances without converting the picture: frames before a window cost less.
            if not capture.grab():
                break
            stamp_ns = round(capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
            stamp_ns = max(stamp_ns, last + 1)  # some containers repeat times; keep them increasing
            last = stamp_ns
            if is_kept(index, kept, spec):
                if in_window(kept, spec):
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


def video_frame_count(spec: InputSpec) -> int | None:
    """How many frames a video gives (stride and cap applied), from the container's frame count;
    None where it does not say (some WebM files). Raises :class:`InputError` when it cannot be opened."""
    capture = cv2.VideoCapture(str(spec.path))
    try:
        if not capture.isOpened():
            raise InputError(f"{spec.path}: cannot open video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return kept_count(total, spec) if total > 0 else None
