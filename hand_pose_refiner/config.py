"""The one configuration schema of hand_pose_refiner, validated on load.

Every component (models, filters, tracking, activity, topics, QoS) reads its settings from
:class:`Config`. The same keys are the ROS parameters of the nodes, flattened with dots
(``spatial_filter.max_hands``), and ``config/assembly.yaml`` is a ROS 2 parameter file
(``/**: ros__parameters: ...``) that both ``ros2 launch`` and :func:`load_config` read. A plain
mapping without that wrapper is accepted as well.

Bad input is refused with a :class:`ConfigError` naming the file, the key and the value.
"""

from __future__ import annotations

import json
import math
import os
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

from hand_pose_refiner.config_file import read_config_yaml
from hand_pose_refiner.errors import ConfigError, clip, shown
from hand_pose_refiner.resources import find_share_file

DEFAULT_CONFIG = "config/assembly.yaml"


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
    detector_config: str = _setting("", "mmlab: the detector's mmengine config file, or built-in paper "
                                    "(Cascade R-CNN R50-FPN) or small; empty = the config stored in "
                                    "detector_checkpoint, else paper")
    pose_config: str = _setting("", "mmlab: the pose model's mmengine config file, or built-in paper "
                                "(HRNetV2-w18, 256x256) or small; empty = the config stored in "
                                "pose_checkpoint, else paper")
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
    self_check: bool = _setting(True, "mediapipe: repeat each detected hand's estimate on the crop its own "
                                "landmarks define and keep it only if the hand is still there and its "
                                "keypoints stay put (rejects hand-shaped objects; one more landmark "
                                "pass per new hand)")
    self_check_max_shift: float = _setting(0.1, "self_check: largest mean keypoint shift between the two "
                                           "estimates, as a fraction of the crop side", min=0.0, max=1.0)
    detector_tile_size: float = _setting(0.0, "mediapipe: the palm detector also looks at half-overlapping "
                                         "square tiles of this side (a fraction of the image's short "
                                         "side), where small hands are larger; 0 = the whole frame "
                                         "only (one more detector pass per tile)", min=0.0, max=1.0)
    detector_tiles_per_frame: int = _setting(0, "mediapipe, live graph: tiles the palm detector looks at "
                                             "per frame beside the whole frame (one batched pass), in "
                                             "rotation, tiles where hands were detected first; 0 = every "
                                             "tile on every frame", min=0, max=1000)
    detector_tile_period: int = _setting(0, "detector_tiles_per_frame: most frames between two looks at a "
                                         "tile; 0 (or fewer than tiles / tiles_per_frame) = that ratio, a "
                                         "plain rotation; more leaves slots for tiles where hands were",
                                         min=0, max=1000)
    surest_crop: bool = _setting(True, "mediapipe: of two overlapping detected crops keep the one the "
                                 "landmark network is surer of (MediaPipe keeps the lower-scored palm's); "
                                 "one more landmark pass per hand detected twice")


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


@dataclass(frozen=True)
class Config:
    """All settings; one section per component."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    spatial_filter: SpatialFilterConfig = field(default_factory=SpatialFilterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    temporal_filter: TemporalFilterConfig = field(default_factory=TemporalFilterConfig)
    recurring_objects: RecurringObjectsConfig = field(default_factory=RecurringObjectsConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    qos: QosConfig = field(default_factory=QosConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig, metadata={"offline": True})

    def to_ros_parameters(self) -> dict[str, Any]:
        """Flat ``section.key -> value`` mapping: the nodes' ROS parameters (lists as lists)."""
        values = {spec.name: spec.value_in(self) for spec in parameter_specs()}
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


@dataclass(frozen=True)
class ParameterSpec:
    """One schema key as a ROS parameter: name, type, default, help and bounds."""

    section: str
    key: str
    type: Any
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple[str, ...] | None
    offline: bool = False  # a key of an offline-only section: not a node parameter

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def value_in(self, config: Config) -> Any:
        return getattr(getattr(config, self.section), self.key)

    def bounds_text(self) -> str:
        """Allowed choices and range in words (config show, docs/parameters.md); empty if none."""
        parts = []
        if self.choices:
            several = typing.get_origin(self.type) is tuple
            parts.append(("any of " if several else "one of ") + ", ".join(self.choices))
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return "; ".join(parts)


def _section_fields() -> Iterator[tuple[str, type]]:
    hints = typing.get_type_hints(Config)
    for section in fields(Config):
        yield section.name, hints[section.name]


def _offline_sections() -> set[str]:
    return {section.name for section in fields(Config) if section.metadata.get("offline")}


def parameter_specs() -> list[ParameterSpec]:
    """Every key of the schema, in file order."""
    specs = []
    offline = _offline_sections()
    for section_name, section_type in _section_fields():
        hints = typing.get_type_hints(section_type)
        for item in fields(section_type):
            specs.append(ParameterSpec(
                section=section_name, key=item.name, type=hints[item.name],
                default=_default_of(item), help=item.metadata["help"],
                min=item.metadata["min"], max=item.metadata["max"], choices=item.metadata["choices"],
                offline=section_name in offline,
            ))
    return specs


def node_parameter_specs() -> list[ParameterSpec]:
    """The keys the live nodes declare as ROS parameters: all but the offline-only sections."""
    return [spec for spec in parameter_specs() if not spec.offline]


def _default_of(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if not callable(item.default_factory):
        raise TypeError(f"schema field {item.name} has no default")
    return item.default_factory()


_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


_LIST_NAMES = {int: "integers", float: "numbers", str: "strings"}


def _check_list(spec: ParameterSpec, value: Any, where: str) -> tuple[Any, ...]:
    """Strings: no entry twice, each one of the choices (if any); numbers: each in the bounds."""
    element = typing.get_args(spec.type)[0]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: must be a list of {_LIST_NAMES[element]}")
    if element is not str:
        return tuple(_check_scalar(spec, element, item, f"{where}: entry {shown(item)}") for item in value)
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    if spec.choices is not None:
        unknown = [v for v in value if v not in spec.choices]
        if unknown:
            raise ConfigError(f"{where}: unknown entries {clip(', '.join(unknown))}; allowed: "
                              f"{', '.join(spec.choices)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: lists an entry twice")
    return tuple(value)


def _check_value(spec: ParameterSpec, value: Any, source: str) -> Any:
    """The value converted to the spec's type, or a ConfigError naming source, key and value."""
    where = f"{source}: {spec.name} = {shown(value)}"
    if typing.get_origin(spec.type) is tuple:
        return _check_list(spec, value, where)
    return _check_scalar(spec, spec.type, value, where)


def _check_scalar(spec: ParameterSpec, expected: type, value: Any, where: str) -> Any:
    """One value (a key's, or a list entry's) of type ``expected`` within the spec's bounds."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = _int_as_float(value)
    if expected is int and isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError(f"{where}: out of range of a 64-bit integer (a ROS 2 integer parameter)")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: must be {_TYPE_NAMES[expected]}, not {type(value).__name__}")
    value = cast(Any, value)  # of type ``expected`` now, which mypy cannot follow through a variable
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number")
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{where}: out of range, must be >= {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{where}: out of range, must be <= {spec.max}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where}: must be one of {', '.join(spec.choices)}")
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_as_float(value: int) -> float:
    """An integer as a float; infinite beyond the float range (then refused as not finite)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _check_cross_field(config: Config, source: str) -> None:
    """Rules that involve two keys at once."""
    spatial = config.spatial_filter
    if spatial.min_hand_size_px > spatial.max_hand_size_px:
        raise ConfigError(f"{source}: spatial_filter.min_hand_size_px = {spatial.min_hand_size_px} "
                          f"is larger than spatial_filter.max_hand_size_px = {spatial.max_hand_size_px}")
    if spatial.min_hand_size_fraction > spatial.max_hand_size_fraction:
        raise ConfigError(f"{source}: spatial_filter.min_hand_size_fraction = "
                          f"{spatial.min_hand_size_fraction} is larger than "
                          f"spatial_filter.max_hand_size_fraction = {spatial.max_hand_size_fraction}")
    _check_schedule(config.refinement, source)


def _check_schedule(refinement: RefinementConfig, source: str) -> None:
    """The refinement schedule's lists are its columns: one entry per round, the same count each."""
    lengths = {key: len(getattr(refinement, key)) for key in SCHEDULE_KEYS}
    if min(lengths.values()) == 0 or len(set(lengths.values())) > 1:
        counts = ", ".join(f"refinement.{key}: {count}" for key, count in lengths.items())
        raise ConfigError(f"{source}: the refinement schedule needs one entry per round in each of its "
                          f"lists, at least one, the same number in all ({counts})")


def config_from_mapping(data: Any, source: str = "<config>") -> Config:
    """Validate a nested mapping (YAML body, optionally in a ROS parameter-file wrapper)."""
    if data is None:
        data = {}
    data = _unwrap_ros_parameters(data, source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, "
                          f"not {type(data).__name__}")
    specs: dict[str, dict[str, ParameterSpec]] = {spec.section: {} for spec in parameter_specs()}
    for spec in parameter_specs():
        specs[spec.section][spec.key] = spec
    sections: dict[str, Any] = {}
    for section_name, body in data.items():
        if section_name not in specs:
            raise ConfigError(f"{source}: unknown section {shown(section_name)}; "
                              f"known: {', '.join(specs)}")
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{source}: {section_name} = {shown(body)}: must be a mapping of keys")
        values = {}
        for key, value in body.items():
            key_spec = specs[section_name].get(str(key))
            if key_spec is None:
                raise ConfigError(f"{source}: unknown key {section_name}.{clip(str(key))} = {shown(value)}; "
                                  f"known keys of {section_name}: {', '.join(specs[section_name])}")
            values[str(key)] = _check_value(key_spec, value, source)
        section_type = dict(_section_fields())[section_name]
        try:
            sections[section_name] = section_type(**values)
        except ConfigError as err:  # a rule between keys of the section (ActivityConfig.__post_init__)
            raise ConfigError(f"{source}: {err}") from err
    config = Config(**sections)
    _check_cross_field(config, source)
    return config


def with_section_values(config: Config, section: str, values: Mapping[str, Any], source: str) -> Config:
    """``config`` with some keys of one section replaced (command-line flags), validated as a file's."""
    specs = {spec.key: spec for spec in parameter_specs() if spec.section == section}
    checked = {}
    for key, value in values.items():
        if key not in specs:
            raise ConfigError(f"{source}: unknown key {section}.{clip(str(key))} = {shown(value)}")
        checked[key] = _check_value(specs[key], value, source)
    updated = replace(config, **{section: replace(getattr(config, section), **checked)})
    _check_cross_field(updated, source)
    return updated


def config_from_ros_parameters(parameters: Mapping[str, Any], source: str = "<ROS parameters>") -> Config:
    """Validate a flat ``section.key -> value`` mapping, as read back from ROS parameters."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in parameters.items():
        section, dot, key = name.partition(".")
        if not dot:
            raise ConfigError(f"{source}: parameter {shown(name)} = {shown(value)} is not of the form "
                              f"section.key")
        nested.setdefault(section, {})[key] = value
    return config_from_mapping(nested, source)


def _unwrap_ros_parameters(data: Any, source: str) -> Any:
    """The body of ``{node_name: {ros__parameters: body}}``, or ``data`` itself."""
    if not isinstance(data, Mapping) or len(data) != 1:
        return data
    (node_name, inner), = data.items()
    if isinstance(inner, Mapping) and "ros__parameters" in inner:
        extra = set(inner) - {"ros__parameters"}
        if extra:
            raise ConfigError(f"{source}: {clip(str(node_name))}: unknown keys next to ros__parameters: "
                              f"{clip(', '.join(sorted(map(str, extra))))}")
        return inner["ros__parameters"]
    return data


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML config file (default: the packaged ``config/assembly.yaml``)."""
    path = Path(path) if path is not None else find_share_file(DEFAULT_CONFIG)
    data = read_config_yaml(path)
    return with_paths_from(config_from_mapping(data, str(path)), path.parent)


def with_paths_from(config: Config, folder: Path) -> Config:
    """``config`` with the refinement section's relative input paths resolved against ``folder``
    (the folder of the file that set them), so that a file works from any working directory.

    A resolved path is written relative to the working directory: the path the same input has
    when it is given on the command line there, so that both make the same refinement options.
    """
    section = config.refinement
    resolved: dict[str, Any] = {key: tuple(_resolve_path(value, folder) for value in getattr(section, key))
                                for key in REFINEMENT_PATH_KEYS}
    return replace(config, refinement=replace(section, **resolved))


def _resolve_path(value: str, folder: Path) -> str:
    return value if os.path.isabs(value) else os.path.relpath(os.path.join(folder, value))


def commented_yaml(config: Config, offline_sections: bool = True) -> str:
    """The config as a ROS 2 parameter file, every key preceded by its help line.

    ``config/assembly.yaml`` is exactly this text for the default config:
    ``hand-pose-refiner config show --defaults > config/assembly.yaml`` regenerates it. Without
    ``offline_sections`` it holds only the nodes' parameters. An offline key whose list is empty
    is written as a comment (its default): not every ROS 2 parameter-file parser accepts an empty
    list. Refinement input paths are written absolute, so that the text works in any folder.
    """
    lines = [
        "# hand_pose_refiner configuration: one schema for every node and offline tool.",
        "# A ROS 2 parameter file: `ros2 launch` passes it to every node (the /** key matches any node",
        "# name and namespace), and `hand-pose-refiner ... --config` reads the same keys.",
        "# Check a file with: hand-pose-refiner config check --config FILE",
        "",
        "/**:",
        "  ros__parameters:",
    ]
    section = None
    values = config.to_ros_parameters()
    for key in REFINEMENT_PATH_KEYS:
        values[f"refinement.{key}"] = [os.path.abspath(path) for path in values[f"refinement.{key}"]]
    for spec in parameter_specs():
        if spec.offline and not offline_sections:
            continue
        if spec.section != section:
            section = spec.section
            lines.append(f"    {section}:")
            if spec.offline:
                lines.append("      # offline only (refine): the nodes neither declare nor read it")
        bounds = spec.bounds_text()
        lines.append(f"      # {spec.help}" + (f" [{bounds}]" if bounds else ""))
        empty = spec.offline and values[spec.name] == []
        lines.append(f"      {'# ' if empty else ''}{spec.key}: {yaml_scalar(values[spec.name])}")
    return "\n".join(lines) + "\n"


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML scalar or flow list that PyYAML reads back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a YAML double-quoted scalar, escapes included
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    text = repr(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 (PyYAML) reads 2e-05 as a string, 2.0e-05 as a number
    return text
