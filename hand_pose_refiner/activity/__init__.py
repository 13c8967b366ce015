"""Activity recognition from filtered hand poses, for cobot controllers.

Two recognisers behind one node, chosen by the checkpoint ``activity.checkpoint`` names:

* a window classifier (a spatio-temporal graph convolution over the 21-keypoint hand graph and
  time) labels windows of one tracked hand's poses with an assembly activity;
* the reach recogniser, causal and per frame, gives the reach phase, reach-onset events, time to
  grasp and the grasped part's size; a model trained on the real reach-to-grasp recordings ships
  with the package and is the default.

The pieces:

* :mod:`~hand_pose_refiner.activity.features`: translation- and scale-normalised window features;
* :mod:`~hand_pose_refiner.activity.model`: :class:`ActivityModel` and its safetensors checkpoints;
* :mod:`~hand_pose_refiner.activity.windows`: per-track windowing, and how bad input is handled;
* :mod:`~hand_pose_refiner.activity.recognizer`: :class:`ActivityRecognizer`, the online API;
* :mod:`~hand_pose_refiner.activity.labels`: the CSV annotation format and pose sources;
* :mod:`~hand_pose_refiner.activity.dataset`: labelled windows from annotated sources;
* :mod:`~hand_pose_refiner.activity.synthetic`: the self-generated, labelled synthetic benchmark;
* :mod:`~hand_pose_refiner.activity.training`: training and evaluation of the window classifier;
* :mod:`~hand_pose_refiner.activity.reach`: :class:`ReachRecognizer`, online: per-track decisions
  and reach-onset events;
* :mod:`~hand_pose_refiner.activity.reach_model`: the reach network (:class:`ReachModel`), streamed
  pose by pose; :mod:`~hand_pose_refiner.activity.reach_checkpoint`: its file format;
* :mod:`~hand_pose_refiner.activity.reach_size_classifier`: grasp size, calibrated per person;
* :mod:`~hand_pose_refiner.activity.reach_features`: per-frame reach features, computed causally;
* :mod:`~hand_pose_refiner.activity.reach_data`: reach recordings through the filters and features;
* :mod:`~hand_pose_refiner.activity.reach_training`: training the reach model: the network
  (:mod:`~hand_pose_refiner.activity.reach_fit`), then the grasp-size classifier
  (:mod:`~hand_pose_refiner.activity.reach_calibration`);
* :mod:`~hand_pose_refiner.activity.reach_evaluation`: the reach model's decisions scored per frame;
* :mod:`~hand_pose_refiner.activity.reach_cross_validation`: leave-one-subject-out folds, and
  :mod:`~hand_pose_refiner.activity.reach_plots` their plot;
* :mod:`~hand_pose_refiner.activity.rtg_dataset`: the reach-to-grasp recordings as pose streams;
* :mod:`~hand_pose_refiner.activity.packaged`: the packaged default model and which checkpoint
  ``activity.checkpoint`` names;
* ``weights/``: the packaged reach model (safetensors) and the data licence it was trained under;
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
