"""What every model backend provides: a hand detector and a pose estimator.

Detection and pose estimation stay separate because backends pair them differently (MediaPipe:
palm detector + landmark network on rotated crops; OpenMMLab: a box detector + top-down pose
model), and because the refinement loop retrains each on its own. Both work on batches of RGB
uint8 images, run CPU or CUDA, and can be fine-tuned on COCO keypoint data, saved and loaded.

What only some backends can do is a capability: a small runtime-checkable protocol below
(:class:`SupportsCropSearch`, :class:`SupportsPresenceThreshold`, ...). Generic code asks for one
with ``isinstance(estimator, SupportsCropSearch)`` and never imports a backend's module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from hand_pose_refiner.coco import CocoImage
from hand_pose_refiner.errors import ModelError
from hand_pose_refiner.hands import Detections, FrameHands

FloatArray = npt.NDArray[np.float32]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``/``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown torch device {name!r}") from exc


@dataclass(frozen=True)
class AugmentSettings:
    """Random image changes applied to training samples (each a probability or a range)."""

    scale_range: tuple[float, float] = (0.75, 1.3)
    max_rotation_deg: float = 30.0
    flip_probability: float = 0.5
    colour_probability: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    hue_deg: float = 10.0
    blur_probability: float = 0.2
    max_blur_sigma: float = 1.5
    glove_probability: float = 0.0


@dataclass(frozen=True)
class FineTuneSettings:
    """How to fine-tune one network (CPU-sized defaults)."""

    epochs: int = 5
    batch_size: int = 8
    learning_rate: float = 2e-5
    # Train only the layers after the backbone: on a few hundred images, retraining everything
    # lets the pre-trained features drift and the detector forgets hands it used to find.
    freeze_backbone: bool = True
    weight_decay: float = 1e-5
    seed: int = 0
    val_fraction: float = 0.2
    samples_per_image: int = 1
    checkpoint_dir: Path | None = None
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    pck_alpha: float = 0.2
    # The training keypoints are a pose model's own predictions (self-training pseudo-labels),
    # not human annotations: backends whose targets depend on the labelling convention adjust.
    pseudo_labels: bool = False
    # Keep the model as it was before this fine-tune and merge both models' outputs, where a
    # backend can at little cost (MediaPipe palm detector, frozen backbone: its heads, evaluated on
    # the shared features): fine-tuning then adds what it learns without losing what it found.
    keep_initial: bool = False
    # A detector that also looks at tiles (SupportsTiles): draw training samples from its tiles
    # too, not only from the whole frame. Off by default: every glove the pseudo-labels missed in a
    # tile is taught as background, and most tiles hold no hand (docs/design/tiles.md).
    tile_samples: bool = False


def split_dataset(dataset: Sequence[CocoImage], config: FineTuneSettings,
                  val_dataset: Sequence[CocoImage] | None) -> tuple[list[CocoImage], list[CocoImage]]:
    """Train and held-out images: the given validation set, or a seeded share of ``dataset``."""
    if val_dataset is not None:
        return list(dataset), list(val_dataset)
    order = np.random.default_rng(config.seed).permutation(len(dataset))
    count = max(1, round(len(dataset) * config.val_fraction)) if len(dataset) > 1 else 0
    return [dataset[i] for i in order[count:]], [dataset[i] for i in order[:count]]


@dataclass
class EpochResult:
    """Training loss and held-out metrics after one epoch."""

    epoch: int
    train_loss: float
    metrics: dict[str, float]
    checkpoint: Path | None


@dataclass
class FineTuneReport:
    """What a fine-tuning run did: the baseline, each epoch, and the split it used."""

    initial_loss: float
    initial_metrics: dict[str, float]
    epochs: list[EpochResult]
    train_images: int
    val_images: int

    @property
    def final_loss(self) -> float:
        return self.epochs[-1].train_loss if self.epochs else self.initial_loss


# The settings every prediction-cache key names, ``None`` where a model has no such setting; a
# setting added later is in a key only while it is on, so that the caches made before stay valid.
KEY_SETTINGS = ("score_threshold", "min_presence", "max_hands", "mirrored", "self_check",
                "self_check_max_shift", "search_sizes", "search_rotations")


def settings_key(values: dict[str, object], later: Sequence[str] = ()) -> list[str]:
    """A model's :meth:`HandDetector.prediction_key`: ``name=value`` for each of
    :data:`KEY_SETTINGS` (``values`` holds the model's own), then the ``later`` parts."""
    unknown = set(values) - set(KEY_SETTINGS)
    if unknown:
        raise ValueError(f"not key settings: {sorted(unknown)}; add a setting as a later part")
    return [f"{name}={values.get(name)}" for name in KEY_SETTINGS] + list(later)


class HandDetector(ABC):
    """Finds hands in whole images."""

    name: str

    @abstractmethod
    def prediction_key(self) -> list[str]:
        """What the detections depend on besides the network's weights (:func:`settings_key`):
        the prediction cache's key. A model without a torch network (not :class:`OnDevice`)
        names its weights here too."""

    @abstractmethod
    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detections for each RGB uint8 image ``(h, w, 3)`` of the batch."""

    @abstractmethod
    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneSettings | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        """Retrain on labelled images (hands with keypoints); held-out split for evaluation."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the weights (safetensors, atomically)."""

    @abstractmethod
    def load(self, path: str | Path) -> None:
        """Read weights written by :meth:`save`; refuses files that do not fit."""

    def warm_up(self) -> None:
        """Do the one-time work of the first inference now (compiling, allocating), so that the
        first frame is not late: the live nodes call it when they are configured. Nothing to do
        for a model whose first inference costs what the others cost."""
        return None


class PoseEstimator(ABC):
    """Locates the 21 keypoints of each detected hand."""

    name: str
    # Whether estimate_tracked() can follow hands from the previous frame without detections.
    tracks_landmarks: bool = False

    @abstractmethod
    def prediction_key(self) -> list[str]:
        """What the keypoints depend on besides the network's weights (:func:`settings_key`):
        the prediction cache's key. A model without a torch network (not :class:`OnDevice`)
        names its weights here too."""

    @abstractmethod
    def estimate(self, images: Sequence[npt.NDArray[np.uint8]], detections: Sequence[Detections],
                 stamps_ns: Sequence[int] | None = None) -> list[FrameHands]:
        """Keypoints of every detected hand, in image pixels, one :class:`FrameHands` per image."""

    def estimate_tracked(self, image: npt.NDArray[np.uint8], previous: FrameHands, stamp_ns: int,
                         detections: Detections | None = None) -> FrameHands:
        """Keypoints of the hands of ``previous`` (the last frame's output) in ``image``, plus of any
        ``detections`` that are not one of them. Only backends with ``tracks_landmarks``."""
        raise NotImplementedError(f"{self.name} cannot follow hands without detections")

    @abstractmethod
    def fine_tune(self, dataset: Sequence[CocoImage], config: FineTuneSettings | None = None,
                  val_dataset: Sequence[CocoImage] | None = None) -> FineTuneReport:
        """Retrain on labelled images; held-out split for evaluation."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the weights (safetensors, atomically)."""

    @abstractmethod
    def load(self, path: str | Path) -> None:
        """Read weights written by :meth:`save`; refuses files that do not fit."""

    def warm_up(self) -> None:
        """Do the one-time work of the first inference now (compiling, allocating), so that the
        first frame is not late: the live nodes call it when they are configured. Nothing to do
        for a model whose first inference costs what the others cost."""
        return None


# -- optional capabilities ----------------------------------------------------------------------
# Each is a structural protocol: a backend has it by having the attributes, and generic code
# tests for it with isinstance (attribute presence, as runtime_checkable protocols check).


@runtime_checkable
class SupportsPresenceThreshold(Protocol):
    """A pose estimator that drops hands its network calls absent below ``min_presence``."""

    min_presence: float


@runtime_checkable
class SupportsCropSearch(Protocol):
    """A pose estimator that also searches crops of every frame: squares with these sides (fractions
    of the image height), each at ``search_rotations`` angles; an empty ``search_sizes`` is off."""

    search_sizes: tuple[float, ...]
    search_rotations: int


@runtime_checkable
class SupportsConsistencyCheck(Protocol):
    """A pose estimator that keeps only hands whose keypoints hold under turned, scaled and shifted
    crops (spread at most ``consistency_max_spread``), when ``consistency_check`` is on."""

    consistency_check: bool
    consistency_max_spread: float


@runtime_checkable
class SupportsSelfCheck(Protocol):
    """A pose estimator that re-runs a hand on its own predicted crop and drops it when the two
    disagree by more than ``self_check_max_shift``."""

    self_check: bool
    self_check_max_shift: float


@runtime_checkable
class SupportsSurestCrop(Protocol):
    """A pose estimator that, of several crops of one hand, keeps the one its network is surest of."""

    surest_crop: bool


@runtime_checkable
class SupportsTiles(Protocol):
    """A detector that also looks at square tiles of this side (a fraction of the image height; 0:
    whole frames only): the views of a frame (the whole frame first, then the tiles, as rotated
    rectangles) and one detection pass over a chosen few of them. A live stream looks at
    ``tiles_per_frame`` tiles a frame in rotation, each within ``tile_period`` frames
    (:class:`~hand_pose_refiner.models.following.DetectionSchedule`; 0 tiles a frame: every tile)."""

    tile_size: float
    tiles_per_frame: int
    tile_period: int

    def rois(self, width: int, height: int) -> FloatArray: ...

    def detect_views(self, image: npt.NDArray[np.uint8], views: FloatArray) -> Detections: ...


@runtime_checkable
class OnDevice(Protocol):
    """A model whose network ``net`` runs on the torch device ``device``; :meth:`to_device` moves
    it there with every tensor it holds (a Ray task given a GPU)."""

    device: torch.device
    net: torch.nn.Module

    def to_device(self, device: torch.device) -> None: ...
