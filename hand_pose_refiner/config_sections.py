"""The sections of the configuration schema: one frozen dataclass per component, each key with its
default, a one-line help and its allowed range or choices.

:mod:`hand_pose_refiner.config` gathers them into :class:`~hand_pose_refiner.config.Config`, turns
them into ROS parameters and validates files against them; import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from hand_pose_refiner.errors import ConfigError, shown


def _setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
             choices: tuple[str, ...] | None = None) -> Any:
    """A schema field: default, one-line help and the allowed range or choices."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelsConfig:
    """Which hand detector and pose estimator run, and where."""

    backend: str = _setting("mediapipe", "model backend: the built-in MediaPipe port (mediapipe, also "
                            "called default) or OpenMMLab (mmlab)", choices=("mediapipe", "default", "mmlab"))
    detector_checkpoint: str = _setting("", "detector weights file; empty = the backend's default")
    pose_checkpoint: str = _setting("", "pose estimator weights file; empty = the backend's default")
    device: str = _setting("auto", "torch device; auto = cuda when available, else cpu",
                           choices=("auto", "cpu", "cuda"))
    batch_size: int = _setting(8, "images (detector) or hand crops (pose) per forward pass",
                               min=1, max=1024)
    detection_score_threshold: float = _setting(0.5, "minimum detector score to crop a hand",
                                                min=0.0, max=1.0)
    landmark_tracking: bool = _setting(True, "live graph: crop each frame's hands where the previous "
                                       "frame's landmarks were (MediaPipe's video mode) instead of "
                                       "waiting for the detector, while max_hands hands are tracked")
    landmark_tracking_max_gap_s: float = _setting(0.1, "longest time between frames over which "
                                                  "landmarks are followed", min=0.0, max=10.0)


@dataclass(frozen=True)
class MediaPipeConfig:
    """Settings only the MediaPipe port reads (``models.backend: mediapipe``)."""

    self_check: bool = _setting(True, "repeat each detected hand's estimate on the crop its own "
                                "landmarks define and keep it only if the hand is still there and its "
                                "keypoints stay put (rejects hand-shaped objects; one more landmark "
                                "pass per new hand)")
    self_check_max_shift: float = _setting(0.1, "self_check: largest mean keypoint shift between the two "
                                           "estimates, as a fraction of the crop side", min=0.0, max=1.0)
    detector_tile_size: float = _setting(0.0, "the palm detector also looks at half-overlapping "
                                         "square tiles of this side (a fraction of the image's short "
                                         "side), where small hands are larger; 0 = the whole frame "
                                         "only (one more detector pass per tile)", min=0.0, max=1.0)
    detector_tiles_per_frame: int = _setting(0, "live graph: tiles the palm detector looks at "
                                             "per frame beside the whole frame (one batched pass), in "
                                             "rotation, tiles where hands were detected first; 0 = every "
                                             "tile on every frame", min=0, max=1000)
    detector_tile_period: int = _setting(0, "detector_tiles_per_frame: most frames between two looks at a "
                                         "tile; 0 (or fewer than tiles / tiles_per_frame) = that ratio, a "
                                         "plain rotation; more leaves slots for tiles where hands were",
                                         min=0, max=1000)
    surest_crop: bool = _setting(True, "of two overlapping detected crops keep the one the "
                                 "landmark network is surer of (MediaPipe keeps the lower-scored palm's); "
                                 "one more landmark pass per hand detected twice")
    runtime: str = _setting("auto", "inference runtime of both networks: openvino (compiled from the torch "
                            "networks, about 2x faster on a CPU), torch, or auto = openvino on the CPU "
                            "when installed, else torch", choices=("auto", "torch", "openvino"))


@dataclass(frozen=True)
class MMLabConfig:
    """Settings only the OpenMMLab backend reads (``models.backend: mmlab``)."""

    detector_config: str = _setting("", "the detector's mmengine config file, or built-in paper "
                                    "(Cascade R-CNN R50-FPN) or small; empty = the config stored in "
                                    "detector_checkpoint, else paper")
    pose_config: str = _setting("", "the pose model's mmengine config file, or built-in paper "
                                "(HRNetV2-w18, 256x256) or small; empty = the config stored in "
                                "pose_checkpoint, else paper")


SPATIAL_RULES = ("keypoint_score", "hand_score", "min_keypoints", "hand_size", "bone_length",
                 "bone_ratio", "joint_angle", "duplicate", "max_hands")


@dataclass(frozen=True)
class SpatialFilterConfig:
    """Per-frame anatomical plausibility rules; each rule can be switched off in ``rules``."""

    enabled: bool = _setting(True, "run the spatial filter at all")
    rules: tuple[str, ...] = _setting(SPATIAL_RULES, "rules to apply (remove one to switch it off)",
                                      choices=SPATIAL_RULES)
    min_keypoint_score: float = _setting(0.3, "keypoint_score: reject keypoints scored lower",
                                         min=0.0, max=1.0)
    min_hand_score: float = _setting(0.5, "hand_score: reject hands whose detection score is lower",
                                     min=0.0, max=1.0)
    min_keypoints: int = _setting(12, "min_keypoints: reject hands with fewer valid keypoints",
                                  min=2, max=21)
    min_hand_size_px: float = _setting(16.0, "hand_size: smallest keypoint-box diagonal, pixels",
                                       min=0.0)
    max_hand_size_px: float = _setting(2000.0, "hand_size: largest keypoint-box diagonal, pixels",
                                       min=0.0)
    min_hand_size_fraction: float = _setting(0.0, "hand_size: smallest keypoint-box diagonal, "
                                             "fraction of the image diagonal", min=0.0, max=1.0)
    max_hand_size_fraction: float = _setting(0.8, "hand_size: largest keypoint-box diagonal, "
                                             "fraction of the image diagonal", min=0.0, max=1.0)
    max_bone_length_px: float = _setting(600.0, "bone_length: longest bone, pixels", min=0.0)
    max_bone_length_fraction: float = _setting(0.3, "bone_length: longest bone, fraction of the "
                                               "image diagonal", min=0.0, max=1.0)
    bone_ratio_tolerance: float = _setting(1.6, "bone_ratio: factor on the anatomical maximum of "
                                           "bone length / palm size (room for foreshortening)",
                                           min=1.0, max=10.0)
    max_backward_bend_deg: float = _setting(50.0, "joint_angle: largest bend of a finger joint "
                                            "against the hand's flexion direction, degrees",
                                            min=0.0, max=180.0)
    duplicate_iou: float = _setting(0.6, "duplicate: box IoU above which two hands are one",
                                    min=0.0, max=1.0)
    duplicate_keypoint_distance: float = _setting(0.1, "duplicate: mean keypoint distance, in hand "
                                                  "sizes, below which two hands are one",
                                                  min=0.0, max=10.0)
    max_hands: int = _setting(2, "max_hands: keep at most this many hands per frame (the best)",
                              min=1, max=100)


@dataclass(frozen=True)
class TrackingConfig:
    """Associating hands across frames into tracks."""

    max_match_distance: float = _setting(1.0, "largest mean keypoint distance, in hand sizes, to "
                                         "continue a track", min=0.0, max=100.0)
    min_hits: int = _setting(2, "observations a track needs before its hands are output",
                             min=1, max=1000)
    max_missed_s: float = _setting(0.5, "seconds without a match after which a track ends",
                                   min=0.0, max=3600.0)


@dataclass(frozen=True)
class TemporalFilterConfig:
    """Per-track velocity limit, gap filling and smoothing."""

    enabled: bool = _setting(True, "run the temporal filter at all")
    max_keypoint_speed: float = _setting(10.0, "largest speed of a keypoint relative to its hand, "
                                         "hand sizes per second", min=0.0)
    max_gap_s: float = _setting(0.25, "longest gap, seconds, that is filled by interpolation",
                                min=0.0, max=60.0)
    online_delay_s: float = _setting(0.0, "look-ahead of the online (live) mode, seconds: fills gaps "
                                     "up to this long in live output, at the cost of as much latency",
                                     min=0.0, max=10.0)
    smoothing: bool = _setting(True, "One Euro smoothing of live output")
    one_euro_min_cutoff_hz: float = _setting(1.0, "One Euro minimum cut-off frequency, Hz",
                                             min=1e-6)
    one_euro_beta: float = _setting(0.05, "One Euro speed coefficient", min=0.0)
    one_euro_d_cutoff_hz: float = _setting(1.0, "One Euro derivative cut-off frequency, Hz",
                                           min=1e-6)


@dataclass(frozen=True)
class RecurringObjectsConfig:
    """Offline, on stills only: hand-shaped objects that look the same in other frames."""

    enabled: bool = _setting(True, "drop a hand whose surroundings look the same in other stills of the "
                             "same folder (replay and refine; live nodes ignore this section)")
    min_other_frames: int = _setting(3, "a keypoint whose surroundings look the same in at least this "
                                     "many other frames is unchanged", min=1, max=100000)
    max_difference: float = _setting(8.0, "mean absolute difference of the RGB values (0-255) up to "
                                     "which a keypoint's surroundings look the same", min=0.0, max=255.0)
    neighbour_frames: int = _setting(3, "the stills this close in the folder's order (either side) are "
                                     "not compared: a resting hand looks the same there, a fixed object "
                                     "in stills far apart too", min=0, max=100000)
    keypoint_fraction: float = _setting(0.25, "a hand with at least this fraction of its keypoints "
                                        "unchanged is an object", min=0.0, max=1.0)
    patch_radius: float = _setting(0.08, "half the side of the square compared around each keypoint, "
                                   "in hand sizes", min=0.0, max=1.0)
    compare_width: int = _setting(640, "frames are compared at this width, pixels (smaller ones as "
                                  "they are)", min=32, max=100000)
    max_reference_frames: int = _setting(200, "compare with at most this many other frames of the folder, "
                                         "spread evenly (bounds memory)", min=1, max=100000)


@dataclass(frozen=True)
class ActivityConfig:
    """The skeleton-based activity recogniser."""

    checkpoint: str = _setting("", "activity model weights (safetensors): a reach recogniser or a "
                               "window classifier; empty = the packaged reach recogniser")
    window_frames: int = _setting(32, "poses per classified window", min=2, max=10000)
    stride_frames: int = _setting(8, "poses between two windows", min=1, max=10000)
    publish_rate_hz: float = _setting(10.0, "HandActivity messages per second per track",
                                      min=0.01, max=1000.0)
    class_names: tuple[str, ...] = _setting(
        ("idle", "reach", "grasp", "screw", "insert", "hold"),
        "activity classes, in the order of the model's outputs (must match the checkpoint)")
    max_gap_s: float = _setting(0.5, "a pause between two poses of a track longer than this, "
                                "seconds, starts a new window", min=0.0, max=3600.0)
    min_valid_fraction: float = _setting(0.5, "skip windows with a smaller fraction of valid "
                                         "keypoints (observed or interpolated)", min=0.0, max=1.0)

    def __post_init__(self) -> None:
        # A classifier needs two classes at least, and a name twice would make labels ambiguous.
        if len(self.class_names) < 2 or any(not name.strip() for name in self.class_names):
            raise ConfigError(f"activity.class_names = {shown(list(self.class_names))}: needs at least two "
                              f"non-empty class names")
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"activity.class_names = {shown(list(self.class_names))}: lists a class twice")


@dataclass(frozen=True)
class TopicsConfig:
    """Topic names, relative to the node namespace (so they can be remapped per camera)."""

    image: str = _setting("image_raw", "camera image (sensor_msgs/Image)")
    compressed_image: bool = _setting(False, "subscribe to <image>/compressed "
                                      "(sensor_msgs/CompressedImage) instead")
    detections: str = _setting("hand_detections", "detector output (HandPoseArray, boxes only)")
    raw_poses: str = _setting("hand_poses/raw", "pose estimator output (HandPoseArray)")
    spatial_poses: str = _setting("hand_poses/spatial", "spatial filter output (HandPoseArray)")
    poses: str = _setting("hand_poses", "tracked, filtered poses (HandPoseArray)")
    activity: str = _setting("hand_activity", "activity per track (HandActivity)")
    overlay: str = _setting("hand_overlay", "image with skeletons drawn (sensor_msgs/Image)")


@dataclass(frozen=True)
class QosConfig:
    """Quality of service: images best effort by default, hands and activities reliable."""

    image_reliability: str = _setting("best_effort", "reliability of image subscriptions",
                                      choices=("best_effort", "reliable"))
    image_depth: int = _setting(2, "history depth of image topics", min=1, max=1000)
    hands_depth: int = _setting(10, "history depth of hand and activity topics", min=1, max=10000)
    pairing_queue_size: int = _setting(10, "images kept while waiting for their detections",
                                       min=1, max=1000)


_INPUT_HELP = "; a relative path is relative to the file's folder (the command line's replace the list)"
_SCHEDULE_HELP = "pseudo-label threshold of each round (one entry per round, the last one repeats): "


@dataclass(frozen=True)
class RefinementConfig:
    """The recipe of ``hand-pose-refiner refine``: inputs by role, rounds, fine-tuning.

    Offline only: the live nodes neither declare nor read this section (``offline`` on
    :class:`Config`'s field), and a parameter file for them leaves it out.
    """

    targets: tuple[str, ...] = _setting((), "recordings the models are refined on (rosbag2, ROS 1 .bag, "
                                        "video, image folder)" + _INPUT_HELP)
    checks: tuple[str, ...] = _setting((), "recordings evaluated every round but not trained on "
                                       "(no-regression check)" + _INPUT_HELP)
    anchors: tuple[str, ...] = _setting((), "recordings the initial models already handle (bare hands): "
                                        "labelled once by them and mixed into every round's training "
                                        "set" + _INPUT_HELP)
    labelled: tuple[str, ...] = _setting((), "labelled COCO keypoint files for PCK, base-first finger "
                                         "order" + _INPUT_HELP)
    labelled_tip_first: tuple[str, ...] = _setting((), "labelled COCO keypoint files listing each finger "
                                                   "tip first (RHD)" + _INPUT_HELP)
    stills: bool = _setting(False, "image folders hold unrelated photographs: no tracking confirmation, "
                            "no temporal filter on them")
    image_topic: str = _setting("", "image topic of the bags; empty = the bag's only image topic")
    fps: float = _setting(10.0, "frame rate that stamps image folders", min=0.001, max=10000.0)
    stride: int = _setting(1, "keep every n-th frame", min=1, max=100000)
    max_frames: int = _setting(0, "at most this many frames per input; 0 = all", min=0, max=100000000)
    split: str = _setting("all", "targets that are image folders: all their images, or one half (alternate "
                          "images in name order): tuning = the 1st, 3rd, ...; test = the 2nd, 4th, ...",
                          choices=("all", "tuning", "test"))
    iterations: int = _setting(2, "refinement rounds at most (a finished run resumed with more "
                               "rounds runs the ones it lacks)", min=0, max=1000)
    search_rounds: int = _setting(0, "the first N rounds also search every target frame with the landmark "
                                  "network for hands the detector misses (mediapipe backend; seconds "
                                  "per frame)", min=0, max=1000)
    patience: int = _setting(1, "rounds without improvement before stopping", min=1, max=1000)
    seed: int = _setting(0, "random seed of the fine-tuning (round k uses seed + k)", min=0, max=10**9)
    anchor_ratio: float = _setting(3.0, "anchor images per pseudo-labelled image in a round's training "
                                   "set", min=0.0, max=1000.0)
    epochs: int = _setting(2, "pose estimator: fine-tuning epochs per round", min=1, max=10000)
    learning_rate: float = _setting(2e-5, "pose estimator: fine-tuning learning rate", min=0.0, max=1.0)
    detector_epochs: int = _setting(12, "hand detector: fine-tuning epochs per round", min=1, max=10000)
    detector_learning_rate: float = _setting(3e-4, "hand detector: fine-tuning learning rate",
                                             min=0.0, max=1.0)
    train_batch_size: int = _setting(8, "fine-tuning batch size", min=1, max=4096)
    samples_per_image: int = _setting(4, "augmented samples drawn from each training image per epoch",
                                      min=1, max=10000)
    glove_probability: float = _setting(0.5, "share of training samples with skin recoloured like a "
                                        "glove", min=0.0, max=1.0)
    max_train_images: int = _setting(60, "at most this many pseudo-labelled images per input and round",
                                     min=1, max=100000000)
    grid_frames: int = _setting(16, "frames in the report's before/after overlay grids; 0 = all",
                                min=0, max=100000)
    threads: int = _setting(1, "torch CPU threads (more threads on a shared machine spin against other "
                            "jobs)", min=1, max=4096)
    schedule_detection_score_threshold: tuple[float, ...] = _setting(
        (0.10, 0.20, 0.30), _SCHEDULE_HELP + "lowest detector score", min=0.0, max=1.0)
    schedule_min_presence: tuple[float, ...] = _setting(
        (0.20, 0.30, 0.40), _SCHEDULE_HELP + "lowest hand presence of the landmark network",
        min=0.0, max=1.0)
    schedule_min_hand_score: tuple[float, ...] = _setting(
        (0.02, 0.05, 0.10), _SCHEDULE_HELP + "spatial_filter.min_hand_score", min=0.0, max=1.0)
    schedule_min_keypoint_score: tuple[float, ...] = _setting(
        (0.15, 0.25, 0.30), _SCHEDULE_HELP + "spatial_filter.min_keypoint_score", min=0.0, max=1.0)
    schedule_min_keypoints: tuple[int, ...] = _setting(
        (18, 17, 16), _SCHEDULE_HELP + "spatial_filter.min_keypoints", min=2, max=21)
    schedule_bone_ratio_tolerance: tuple[float, ...] = _setting(
        (1.3, 1.4, 1.5), _SCHEDULE_HELP + "spatial_filter.bone_ratio_tolerance", min=1.0, max=10.0)
    schedule_max_backward_bend_deg: tuple[float, ...] = _setting(
        (35.0, 40.0, 45.0), _SCHEDULE_HELP + "spatial_filter.max_backward_bend_deg", min=0.0, max=180.0)

    def schedule(self) -> list[tuple[float, float, float, float, int, float, float]]:
        """One row per round, in the order of ``refinement.refine.Thresholds``' fields."""
        return list(zip(self.schedule_detection_score_threshold, self.schedule_min_presence,
                        self.schedule_min_hand_score, self.schedule_min_keypoint_score,
                        self.schedule_min_keypoints, self.schedule_bone_ratio_tolerance,
                        self.schedule_max_backward_bend_deg, strict=True))


REFINEMENT_PATH_KEYS = ("targets", "checks", "anchors", "labelled", "labelled_tip_first")
SCHEDULE_KEYS = tuple(item.name for item in fields(RefinementConfig) if item.name.startswith("schedule_"))
