"""Recurring-object filter: hand-shaped things that look the same in other stills of the folder.

A fixed camera sees the same things in every frame. When the pose model mistakes one of them for
a hand (a tray of wooden blocks, a block station), it does so in frame after frame, and the
*image* under the hallucinated keypoints is the same each time: the object does not move. A
worker's hand comes back to where the work is too, so where a hand is says little (a rule on box
positions dropped half of the side view's real gloves, which stay at the station); but a hand in
a glove is never twice the same picture: fingers bend, the glove folds, the arm moves.

So each keypoint's surroundings (a square of ``patch_radius`` hand sizes) are compared with the
same square in the other frames of the same image size but not the ``neighbour_frames`` next to
it in the folder's order, at ``compare_width`` pixels wide (which smooths JPEG noise and small
camera shake). A keypoint is *unchanged* if its square differs by at most ``max_difference``
levels (mean absolute difference of the RGB values, 0-255) in at least ``min_other_frames`` other
frames; a hand with ``keypoint_fraction`` of its keypoints unchanged is an object. A quarter
suffices, because a robot arm passing over the object can cover the rest. The neighbours are
left out because a worker's hand at rest looks the same for a few stills in a row; a fixed
object looks the same in stills far apart as well.

Measured on the 56 gloved glovebox stills, on every hand the models of three refinement rounds
found, each sorted into hand or object by a hand region marked by eye on every still. At the
live thresholds the rule drops all 80 hand-shaped objects (76 in the top view, on the block tray
and the block station, also where the robot arm covers part of them) and 1 of 21 real hands; the
rule it replaces, on where hands are, dropped 6 of the 12 side-view gloves of the best round,
which stay at the station, and kept 3 frames of blocks. On the low-threshold candidates the
rounds learn from, it drops 60 of 61 objects and 4 of 41 hands. Compared with every other still,
it also dropped a top-view glove resting on the table for five stills in a row (5 of the 17
top-view gloves of a later round); with the 3 neighbours either side left out it keeps all 17,
and of the objects of those rounds it lets one more through (side view), which the spatial
filter then rejects.

The rule needs the whole folder at once, so it runs offline on stills only (replay and refine);
in a video a resting hand looks the same for many frames and this rule would be wrong there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.config import RecurringObjectsConfig
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands

RULE = "recurring_object"
MIN_PATCH_RADIUS = 2  # pixels at the comparison width: smaller squares are mostly JPEG noise

ImageSource = Callable[[int], npt.NDArray[np.uint8]]
"""The image of frame ``index`` (RGB, ``height x width x 3``), in the order of the frames."""


class _Downscaled:
    """The frames of one image size at the comparison width, each read once and kept."""

    def __init__(self, image: ImageSource, width: int, image_width: int) -> None:
        self._image = image
        self.scale = min(1.0, width / image_width)
        self._frames: dict[int, npt.NDArray[np.uint8]] = {}

    def __getitem__(self, index: int) -> npt.NDArray[np.uint8]:
        if index not in self._frames:
            frame = self._image(index)
            if self.scale < 1.0:
                frame = np.asarray(cv2.resize(frame, None, fx=self.scale, fy=self.scale,
                                              interpolation=cv2.INTER_AREA), np.uint8)
            self._frames[index] = frame
        return self._frames[index]

    def forget(self, keep: Container[int]) -> None:
        """Drop every frame but ``keep`` (the references), so memory stays bounded."""
        self._frames = {index: frame for index, frame in self._frames.items() if index in keep}


def _references(indexes: Sequence[int], most: int) -> list[int]:
    """At most ``most`` of ``indexes``, spread evenly over them."""
    if len(indexes) <= most:
        return list(indexes)
    picks = np.unique(np.linspace(0, len(indexes) - 1, most).round().astype(int))
    return [indexes[i] for i in picks]


def _unchanged_keypoints(frame: npt.NDArray[np.uint8], references: npt.NDArray[np.uint8],
                         excluded: npt.NDArray[np.bool_], keypoints: npt.NDArray[np.float64],
                         config: RecurringObjectsConfig) -> tuple[int, int]:
    """How many keypoints look unchanged in ``min_other_frames`` of ``references`` (but not in
    the ``excluded`` ones: the frame itself and its neighbours), of how many compared.

    ``keypoints`` are at the comparison width; those without a position, or too close to the
    border for a whole square, are not compared.
    """
    present = np.isfinite(keypoints).all(axis=1)
    if not present.any():
        return 0, 0
    extent = keypoints[present].max(axis=0) - keypoints[present].min(axis=0)
    radius = max(MIN_PATCH_RADIUS, round(config.patch_radius * float(extent.max())))
    height, width = frame.shape[:2]
    unchanged = compared = 0
    for x, y in keypoints[present].round().astype(int):
        if not (radius <= x < width - radius and radius <= y < height - radius):
            continue
        rows, cols = slice(y - radius, y + radius + 1), slice(x - radius, x + radius + 1)
        square = frame[rows, cols].astype(np.int16)
        differences = np.abs(references[:, rows, cols].astype(np.int16) - square).mean(axis=(1, 2, 3))
        differences[excluded] = np.inf
        kth = np.partition(differences, config.min_other_frames - 1)[config.min_other_frames - 1]
        compared += 1
        unchanged += int(kth <= config.max_difference)
    return unchanged, compared


def recurring_hands(frames: Sequence[FrameHands], image: ImageSource,
                    config: RecurringObjectsConfig) -> list[npt.NDArray[np.bool_]]:
    """Per frame, a mask of its hands that are objects: see the module docstring.

    ``frames`` are in the folder's order (their indexes are what ``neighbour_frames`` counts).
    Frames are compared only with frames of the same image size, and with at most
    ``max_reference_frames`` of them (spread evenly), so a large folder needs bounded memory.
    """
    masks = [np.zeros(len(frame), bool) for frame in frames]
    sizes: dict[tuple[int, int], list[int]] = {}
    for index, frame in enumerate(frames):
        sizes.setdefault((frame.image_width, frame.image_height), []).append(index)
    for (image_width, _), indexes in sizes.items():
        if not any(len(frames[index]) for index in indexes):
            continue
        downscaled = _Downscaled(image, config.compare_width, image_width)
        references = _references(indexes, config.max_reference_frames)
        stack = np.stack([downscaled[index] for index in references])
        positions = {index: position for position, index in enumerate(references)}
        reference_indexes = np.asarray(references)
        for index in indexes:
            excluded = np.abs(reference_indexes - index) <= config.neighbour_frames
            if not len(frames[index]) or np.count_nonzero(~excluded) < config.min_other_frames:
                continue
            for hand, keypoints in enumerate(frames[index].keypoints.astype(np.float64)):
                unchanged, compared = _unchanged_keypoints(downscaled[index], stack, excluded,
                                                           keypoints * downscaled.scale, config)
                needed = max(1, math.ceil(config.keypoint_fraction * compared))
                masks[index][hand] = compared > 0 and unchanged >= needed
            downscaled.forget(positions)
    return masks


def drop_recurring_objects(frames: Sequence[FrameHands], image: ImageSource,
                           config: RecurringObjectsConfig,
                           stats: RejectionStats | None = None) -> list[FrameHands]:
    """``frames`` without the hands that :func:`recurring_hands` finds, each one counted."""
    stats = stats or RejectionStats("recurring_objects")
    masks = recurring_hands(frames, image, config)
    kept = []
    for frame, dropped in zip(frames, masks, strict=True):
        stats.add("hands_in", len(frame))
        if dropped.any():
            stats.reject(RULE, int(dropped.sum()),
                         f"looks the same as in {config.min_other_frames}+ other frames: a fixed object")
            frame = frame.select(~dropped)
        stats.add("hands_out", len(frame))
        kept.append(frame)
    return kept
