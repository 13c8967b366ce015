"""Exception types of hand_pose_refiner.

Every error the package raises on bad input derives from :class:`HandPoseRefinerError`, so a
caller can catch the package's own failures without swallowing programming errors.
"""

from __future__ import annotations

import reprlib


class HandPoseRefinerError(Exception):
    """Base class of every error raised by hand_pose_refiner on bad input or environment."""


# What the command line reports as one line and exit code 2 rather than a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (HandPoseRefinerError, FileNotFoundError, FileExistsError)


class ConfigError(HandPoseRefinerError, ValueError):
    """A configuration file or parameter set is malformed (unknown key, wrong type, range)."""


class ImageError(HandPoseRefinerError, ValueError):
    """An image buffer cannot be converted."""


class UnsupportedEncodingError(ImageError):
    """The image encoding (raw) or format (compressed) is not supported."""


class ImageSizeError(ImageError):
    """The image buffer's length or row step does not match its declared size."""


class BadFrameError(ImageError):
    """One frame of a recording cannot be used; ``reason`` is the short name it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail or reason


class AnnotationError(HandPoseRefinerError, ValueError):
    """A COCO keypoint annotation is malformed."""


class InterfacesUnavailableError(HandPoseRefinerError, ImportError):
    """The generated ROS 2 message types (hand_pose_refiner.msg) cannot be imported."""


class WeightsError(HandPoseRefinerError, ValueError):
    """A model weight file is missing, truncated, corrupt or does not fit the network."""


class UnreadableTorchFileError(WeightsError):
    """A torch file that ``torch.load(weights_only=True)`` refuses; ``reason`` says why (it pickles
    more than tensors and containers, or it is corrupt)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: not a readable torch weight file: {reason}; only plain tensors and "
                         f"containers are accepted, nothing is unpickled")
        self.path, self.reason = path, reason


class ModelError(HandPoseRefinerError, RuntimeError):
    """A hand model cannot run as asked (bad input batch, unavailable device, bad dataset)."""


class ActivityCheckpointError(HandPoseRefinerError, ValueError):
    """An activity model checkpoint is missing, corrupt, or not made for this configuration."""


class ActivityClassMismatchError(ActivityCheckpointError):
    """An activity model's class names differ from those the configuration asks for."""


class ActivityLabelError(HandPoseRefinerError, ValueError):
    """An activity annotation file (CSV) or a pose source it names is malformed."""


class InputError(HandPoseRefinerError, ValueError):
    """A recording (bag, video, image folder) cannot be opened or is truncated or corrupt."""


class RefinementStateError(HandPoseRefinerError, ValueError):
    """A refinement run folder holds a state that does not fit the options it is resumed with."""


class ClusterError(HandPoseRefinerError, RuntimeError):
    """A distributed run cannot start: Ray missing or unreachable, more processes than devices."""


# What an error message shows of a value: enough to recognise it, never the whole of a huge one.
MAX_SHOWN = 80


def clip(text: str) -> str:
    """``text`` cut to MAX_SHOWN characters, so a huge value never floods a message."""
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def shown(value: object) -> str:
    """``repr(value)`` for an error message: at most MAX_SHOWN characters, however large the value."""
    return clip(_SHORT_REPR.repr(value))


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = MAX_SHOWN
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 3
    return short


_SHORT_REPR = _short_repr()
