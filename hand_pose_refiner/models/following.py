"""Hand keypoints frame after frame as the live pose estimator computes them (MediaPipe's video mode).

With ``models.landmark_tracking`` and a pose estimator that can follow hands, a frame at most
``models.landmark_tracking_max_gap_s`` after the previous one is cropped where the previous
frame's hands were; the detector's boxes are needed only while fewer than
``spatial_filter.max_hands`` hands are followed, and then add the hands not followed yet.
Otherwise each frame is cropped from its own detections.

:class:`DetectionSchedule` is the detector's side of a stream: the whole frame on every frame
and, with ``mediapipe.detector_tiles_per_frame``, a few tiles in rotation
(:class:`~hand_pose_refiner.models.tile_rotation.TileRotation`) instead of all of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.config import Config
from hand_pose_refiner.hands import Detections, FrameHands
from hand_pose_refiner.models.base import HandDetector, PoseEstimator, SupportsTiles
from hand_pose_refiner.models.tile_rotation import TileRotation


class HandFollower:
    """One stream's pose estimation: remembers the last frame's hands to crop the next one."""

    def __init__(self, estimator: PoseEstimator, config: Config) -> None:
        self.estimator = estimator
        self.enabled = config.models.landmark_tracking and estimator.tracks_landmarks
        self.max_gap_ns = round(config.models.landmark_tracking_max_gap_s * 1e9)
        self.max_hands = config.spatial_filter.max_hands
        self.previous: FrameHands | None = None  # the last estimate with hands

    def reset(self) -> None:
        """Forget the followed hands: the next frame is cropped from its detections (a new stream)."""
        self.previous = None

    def followable(self, stamp_ns: int) -> FrameHands | None:
        """The previous hands if a frame at ``stamp_ns`` may be cropped from them."""
        previous = self.previous
        if not self.enabled or previous is None or not 0 < stamp_ns - previous.stamp_ns <= self.max_gap_ns:
            return None
        return previous

    def needs_detections(self, stamp_ns: int) -> bool:
        """Whether the frame at ``stamp_ns`` needs the detector (fewer than ``max_hands`` followed)."""
        previous = self.previous
        if previous is None:
            return True
        return self.needs_detections_after(previous.stamp_ns, len(previous), stamp_ns)

    def needs_detections_after(self, followed_stamp_ns: int, followed: int, stamp_ns: int) -> bool:
        """MediaPipe's video-mode rule: the frame at ``stamp_ns`` needs the detector unless
        ``followed`` hands, at least ``max_hands``, were estimated at ``followed_stamp_ns``, at most
        ``landmark_tracking_max_gap_s`` before (the detector node applies it to the pose
        estimator's last output)."""
        followable = self.enabled and 0 < stamp_ns - followed_stamp_ns <= self.max_gap_ns
        return not followable or followed < self.max_hands

    def estimate(self, image: npt.NDArray[np.uint8], stamp_ns: int,
                 detections: Detections | None) -> FrameHands | None:
        """The frame's raw hands (from the followed hands and ``detections``), remembered for the
        next frame; None when there is nothing to crop (no detections and nothing followed)."""
        previous = self.followable(stamp_ns)
        if previous is not None:
            hands = self.estimator.estimate_tracked(image, previous, stamp_ns, detections)
        elif detections is not None:
            (hands,) = self.estimator.estimate([image], [detections], [stamp_ns])
        else:
            return None
        self.previous = hands if len(hands) else None
        return hands


class DetectionSchedule:
    """One stream's detector calls (the detector node's and :meth:`HandPipeline.track`'s).

    With a detector with tiles (:class:`SupportsTiles`) that sets ``tiles_per_frame``, each frame
    is seen whole and in that many tiles, all in one forward pass, the tiles chosen by a
    :class:`TileRotation` that counts where this stream's hands were detected. Otherwise every
    view on every frame (:meth:`HandDetector.detect`), as single images and the offline tools get.
    """

    def __init__(self, detector: HandDetector) -> None:
        self.detector = detector
        self.rotation: TileRotation | None = None
        if isinstance(detector, SupportsTiles) and detector.tiles_per_frame:
            self.rotation = TileRotation(detector.tiles_per_frame, detector.tile_period)

    def reset(self) -> None:
        """Start the rotation over and forget where hands were (a new stream)."""
        if self.rotation is not None:
            self.rotation.reset(0)

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """The detections of the stream's next frame (RGB)."""
        detector = self.detector
        if self.rotation is None or not isinstance(detector, SupportsTiles):
            (found,) = detector.detect([image])
            return found
        views = detector.rois(image.shape[1], image.shape[0])
        tiles = views[1:]
        chosen = self.rotation.select(len(tiles))
        found = detector.detect_views(image, np.concatenate([views[:1], tiles[chosen]]))
        self.rotation.saw(tiles, (found.boxes[:, :2] + found.boxes[:, 2:]) / 2)
        return found
