"""The tuning and test halves of a folder of stills (the refinement recipe's ``split``).

The images at even positions in name order (replay's order:
:func:`~.image_folder_reader.image_files`) are for tuning, those at odd positions for testing;
each half is every other image, so both cover the folder alike.
"""

from __future__ import annotations

from dataclasses import replace

from hand_pose_refiner.refinement.input_spec import InputSpec, input_kind

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
