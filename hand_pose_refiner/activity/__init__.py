"""Activity recognition from filtered hand poses, for cobot controllers.

A skeleton-based classifier (a spatio-temporal graph convolution over the 21-keypoint hand graph
and time) labels windows of one tracked hand's poses with an assembly activity. The pieces:

* :mod:`~hand_pose_refiner.activity.features`: translation- and scale-normalised window features;
* :mod:`~hand_pose_refiner.activity.model`: :class:`ActivityModel` and its safetensors checkpoints;
* :mod:`~hand_pose_refiner.activity.windows`: per-track windowing, and how bad input is handled;
* :mod:`~hand_pose_refiner.activity.recognizer`: :class:`ActivityRecognizer`, the online API;
* :mod:`~hand_pose_refiner.activity.labels`: the CSV annotation format and pose sources;
* :mod:`~hand_pose_refiner.activity.dataset`: labelled windows from annotated sources;
* :mod:`~hand_pose_refiner.activity.synthetic`: the self-generated, labelled synthetic benchmark;
* :mod:`~hand_pose_refiner.activity.training`: training and evaluation;
* :mod:`~hand_pose_refiner.activity.cli`: the ``train-activity``, ``eval-activity`` and
  ``synth-activity`` subcommands.

Torch is imported by the model modules only, so that importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ActivityModel", "ActivityRecognizer", "ActivityResult"]

if TYPE_CHECKING:
    from hand_pose_refiner.activity.model import ActivityModel
    from hand_pose_refiner.activity.recognizer import ActivityRecognizer, ActivityResult


def __getattr__(name: str) -> Any:
    """Import the torch-based classes on first use."""
    if name == "ActivityModel":
        from hand_pose_refiner.activity.model import ActivityModel

        return ActivityModel
    if name in ("ActivityRecognizer", "ActivityResult"):
        from hand_pose_refiner.activity import recognizer

        return getattr(recognizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
