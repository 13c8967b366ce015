"""Readers for every kind of recording replay accepts: bags, videos and folders of images.

Each reader yields RGB frames with real time stamps, in order, so that the temporal filter sees
what the live nodes would have seen. Bad input never costs good data: a frame that cannot be
decoded (empty, short buffer, undecodable or truncated JPEG, ...) is skipped and counted by
reason in a :class:`ReadReport`, and a recording damaged part-way (a truncated MCAP, a bag that
fails mid-read) gives the frames before the damage. A recording is refused whole, with an
:class:`InputError` naming the file, only when nothing in it can be read (missing, corrupt, no
or several image topics), so the caller can go on with the other inputs.

This module is the entry point: :func:`read_frames` and :func:`count_frames` take the reader of a
recording's kind (:mod:`.bag_reader`, :mod:`.video_reader`, :mod:`.image_folder_reader`). What
a recording is and how it is read: :mod:`.input_spec`; which of its frames: :mod:`.frame_selection`;
the tuning and test halves of a folder of stills: :mod:`.tuning_test_split`.
"""

from __future__ import annotations

from collections.abc import Iterator

from hand_pose_refiner.errors import InputError
from hand_pose_refiner.refinement.bag_reader import bag_frame_count, bag_frames
from hand_pose_refiner.refinement.frame_selection import kept_count
from hand_pose_refiner.refinement.image_folder_reader import folder_frames, image_files
from hand_pose_refiner.refinement.input_spec import Frame, InputSpec, ReadReport
from hand_pose_refiner.refinement.video_reader import video_frame_count, video_frames


def count_frames(spec: InputSpec) -> int | None:
    """How many frames the whole recording gives (stride and cap applied), without decoding.

    From the bag's index, the folder's listing or the video container's frame count; None
    where the container does not say (some WebM files) or the bag has no index (cut short).
    Raises :class:`InputError` on a recording that cannot be opened.
    """
    kind = spec.kind
    if kind == "images":
        return kept_count(len(image_files(spec.path)), spec)
    if kind == "bag":
        return bag_frame_count(spec)
    return video_frame_count(spec)


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
    readers = {"bag": bag_frames, "video": video_frames, "images": folder_frames}
    return readers[spec.kind](spec, report if report is not None else ReadReport())
