"""Hand poses in a few lines of Python: the live graph's models and filters, without ROS.

    from hand_pose_refiner import HandPipeline
    pipeline = HandPipeline()                     # or HandPipeline("deploy.yaml") / HandPipeline(config)
    hands = pipeline(image)                       # one image: detector + pose + spatial filter
    for hands in pipeline.track("clip.webm"):     # a video: + tracking + online temporal filter
        print(hands.stamp, hands.track_ids, hands.keypoints.shape)
    pipeline.track_rgb((stamp_ns, rgb) for ...)   # frames already decoded (as ``annotate`` does)

The same core classes as the nodes (:func:`~hand_pose_refiner.models.create_backend`,
:class:`~hand_pose_refiner.models.following.HandFollower`,
:class:`~hand_pose_refiner.filters.pipeline.PoseFilterPipeline` in online mode) on the same
:class:`~hand_pose_refiner.config.Config`. Images are ``uint8`` arrays ``(h, w, 3)`` in OpenCV's
BGR order unless ``color="rgb"`` is given (``(h, w)`` grey and ``(h, w, 4)`` BGRA/RGBA are
accepted too). Each result is a :class:`~hand_pose_refiner.hands.FrameHands`: ``keypoints``
``(n, 21, 2)`` in pixels, ``keypoint_scores``, ``boxes`` ``(n, 4)`` xyxy, ``detection_scores``,
``handedness`` (:class:`~hand_pose_refiner.skeleton.Handedness` values), ``track_ids`` (-1 for
a single image).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal, Union

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.config import Config, load_config
from hand_pose_refiner.errors import ImageError, ImageSizeError, InputError, UnsupportedEncodingError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.spatial import SpatialFilter
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import read_bgr, to_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.following import DetectionSchedule, HandFollower
from hand_pose_refiner.refinement.input_spec import InputSpec, ReadReport
from hand_pose_refiner.refinement.inputs import read_frames

Color = Literal["bgr", "rgb"]
# One video frame: the pixels (stamped from ``fps``), or ``(time in seconds, pixels)``.
VideoFrame = Union[np.ndarray, tuple[float, np.ndarray]]  # noqa: UP007 (a runtime alias on Python 3.10)
# One decoded video frame: (time stamp in nanoseconds, RGB pixels).
StampedRGB = tuple[int, npt.NDArray[np.uint8]]

_ENCODINGS: dict[tuple[str, int], str] = {("bgr", 3): "bgr8", ("bgr", 4): "bgra8", ("rgb", 3): "rgb8",
                                          ("rgb", 4): "rgba8", ("bgr", 1): "mono8", ("rgb", 1): "mono8"}


def as_rgb(image: npt.ArrayLike, color: Color = "bgr") -> npt.NDArray[np.uint8]:
    """``image`` as the ``(h, w, 3)`` uint8 RGB array the models take.

    ``color`` names the channel order of ``image`` (``bgr``: as OpenCV reads and decodes; ``rgb``:
    as PIL, imageio and matplotlib do). Refuses anything but one uint8 ``(h, w)``, ``(h, w, 1)``,
    ``(h, w, 3)`` or ``(h, w, 4)`` array with an :class:`ImageError` saying what was wrong.
    """
    if color not in ("bgr", "rgb"):
        raise UnsupportedEncodingError(f"color={color!r}: use 'bgr' (OpenCV) or 'rgb'")
    if image is None:
        raise ImageError("an image must be a numpy array, got None (cv2.imread gives None for a file "
                         "it cannot read)")
    if not isinstance(image, np.ndarray):
        raise ImageError(f"an image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise UnsupportedEncodingError(f"an image must be uint8 (0..255), got {image.dtype}; for floats in "
                                       "0..1 pass (image * 255).round().astype(np.uint8)")
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    if channels not in (1, 3, 4):
        batch = "; one image per call (a video goes to track())" if image.ndim == 4 else ""
        raise ImageSizeError(f"an image must have shape (h, w), (h, w, 3) or (h, w, 4), "
                             f"got {image.shape}{batch}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageSizeError(f"empty image of shape {image.shape}")
    pixels = image.reshape(image.shape[:2]) if channels == 1 else image
    return to_rgb(pixels, _ENCODINGS[color, channels])


class HandPipeline:
    """Detector, pose estimator and filters of the live graph, called on images and videos.

    ``config``: a :class:`Config`, the path of a config file (``config/assembly.yaml``, a run's
    ``deploy.yaml`` with its refined checkpoints), or None for the defaults. ``device``
    (``cpu``, ``cuda``, ``auto``) overrides ``models.device``. The models load once here; each
    call or :meth:`track` reuses them.
    """

    def __init__(self, config: Config | str | Path | None = None, *, device: str | None = None) -> None:
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            config = load_config(config)
        if device is not None:
            config = replace(config, models=replace(config.models, device=device))
        self.config = config
        self.detector, self.estimator = create_backend(config)
        self.spatial_filter = SpatialFilter(config.spatial_filter)
        self.last_read_report = ReadReport()  # what the last track() of a recording skipped

    def __call__(self, image: np.ndarray | str | Path, *, color: Color = "bgr",
                 stamp_ns: int = 0) -> FrameHands:
        """The plausible hands of one image (an array, or an image file's path): detector, pose
        estimator, spatial filter. Untracked: ``track_ids`` are -1."""
        return self.spatial_filter(self.raw(image, color=color, stamp_ns=stamp_ns)).accepted

    def raw(self, image: np.ndarray | str | Path, *, color: Color = "bgr", stamp_ns: int = 0) -> FrameHands:
        """What the models find in one image, before any filter (what ``hand_poses/raw`` carries)."""
        if isinstance(image, (str, Path)):
            image, color = read_bgr(image), "bgr"
        rgb = as_rgb(image, color)
        (hands,) = self.estimator.estimate([rgb], self.detector.detect([rgb]), [stamp_ns])
        return hands

    def track(self, frames: Iterable[VideoFrame] | str | Path, *, fps: float = 30.0,
              color: Color = "bgr") -> Iterator[FrameHands]:
        """Tracked, filtered hands of a video, one :class:`FrameHands` per frame, in order.

        ``frames``: a recording's path (video file, rosbag, folder of images; decoded as replay
        does, with the recording's own time stamps; ``fps`` stamps an image folder; frames that
        cannot be decoded, or whose stamp is not newer than the one before, are skipped and counted
        in ``last_read_report``), or an
        iterable of images (stamped ``index / fps`` seconds) or of ``(seconds, image)`` pairs.
        As the live graph: hands followed from frame to frame, the detector's tiles in rotation
        (``mediapipe.detector_tiles_per_frame``; the rotation moves on with each frame the detector
        runs on, which here is only while fewer than ``max_hands`` hands are followed), spatial
        filter, tracker, online
        temporal filter (a frame comes out once ``temporal_filter.online_delay_s`` of newer
        frames has come in; the rest at the end). Each call starts new tracks.
        """
        if fps <= 0:
            raise InputError(f"fps must be > 0, got {fps}")
        self.last_read_report = ReadReport()
        yield from self.track_rgb(self._stamped_rgb(frames, fps, color))

    def track_rgb(self, frames: Iterable[StampedRGB]) -> Iterator[FrameHands]:
        """:meth:`track` on frames already decoded: ``(stamp_ns, RGB pixels)`` pairs, as
        :func:`~hand_pose_refiner.refinement.inputs.read_frames` gives them; stamps must increase.
        Frames are read one at a time, as the results need them."""
        follower = HandFollower(self.estimator, self.config)
        schedule = DetectionSchedule(self.detector)
        filters = PoseFilterPipeline(self.config, FilterMode.ONLINE)
        for stamp_ns, rgb in _increasing(frames):
            detections = None
            if follower.needs_detections(stamp_ns):
                detections = schedule.detect(rgb)
            raw = follower.estimate(rgb, stamp_ns, detections)
            yield from filters.push(raw if raw is not None else FrameHands.empty(stamp_ns, *rgb.shape[1::-1]))
        yield from filters.flush()

    def _stamped_rgb(self, frames: Iterable[VideoFrame] | str | Path, fps: float,
                     color: Color) -> Iterator[StampedRGB]:
        """``(stamp_ns, RGB pixels)`` of each frame."""
        if isinstance(frames, (str, Path)):
            return _recording_frames(Path(frames), fps, self.last_read_report)
        return (_stamped(index, item, fps, color) for index, item in enumerate(frames))


def _recording_frames(path: Path, fps: float, report: ReadReport) -> Iterator[StampedRGB]:
    """A recording's frames as replay decodes them; as the live graph drops a frame not newer
    than the one before it, so is such a frame skipped here, and counted in ``report`` with the
    frames that could not be decoded."""
    last_ns: int | None = None
    for frame in read_frames(InputSpec(path, fps=fps), report):
        if last_ns is not None and frame.stamp_ns <= last_ns:
            report.skip(frame.index, "stamp not newer than the frame before",
                        f"{frame.stamp_ns} ns after {last_ns} ns")
            continue
        last_ns = frame.stamp_ns
        yield frame.stamp_ns, frame.rgb


def _increasing(frames: Iterable[StampedRGB]) -> Iterator[StampedRGB]:
    """The frames as given; an :class:`InputError` at the first stamp not newer than the one before."""
    last_ns: int | None = None
    for stamp_ns, rgb in frames:
        if last_ns is not None and stamp_ns <= last_ns:
            raise InputError(f"frame stamps must increase: {stamp_ns} ns after {last_ns} ns")
        last_ns = stamp_ns
        yield stamp_ns, rgb


def _stamped(index: int, item: VideoFrame, fps: float, color: Color) -> StampedRGB:
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InputError(f"frame {index}: a stamped frame is (seconds, image), got {len(item)} items")
        seconds, image = item
        return round(float(seconds) * 1e9), as_rgb(image, color)
    return round(index * 1e9 / fps), as_rgb(item, color)
