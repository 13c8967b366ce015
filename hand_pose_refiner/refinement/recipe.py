"""The refinement recipe of a config (its ``refinement`` section) as :class:`RefineSettings`.

``refine --config FILE`` and the same recipe given as flags make the same options, so a run
folder made one way resumes the other way (its state stores :meth:`RefineSettings.identity`).
"""

from __future__ import annotations

from pathlib import Path

from hand_pose_refiner.config import REFINEMENT_PATH_KEYS, RefinementConfig
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.rounds import Thresholds
from hand_pose_refiner.refinement.settings import LabelledSet, RefineSettings
from hand_pose_refiner.refinement.tuning_test_split import half_of


def recipe_inputs(recipe: RefinementConfig, paths: tuple[str, ...],
                  stills_any_kind: bool = True, split: str = "all") -> tuple[InputSpec, ...]:
    """The recordings ``paths`` read as the recipe says. ``stills`` applies to every target, whatever
    its kind (as replay's --stills), and to the check and anchor recordings only where they are
    image folders (``stills_any_kind`` False): those are bare-hand videos, filtered over time.
    ``split`` (``tuning`` or ``test``) keeps one half of each image folder (videos and bags are
    read whole: neighbouring frames are no held-out data)."""
    return tuple(half_of(InputSpec(Path(path), recipe.image_topic or None, recipe.fps,
                                   recipe.stills and (stills_any_kind or Path(path).is_dir()),
                                   recipe.stride, recipe.max_frames or None), split)
                 for path in paths)


def refine_options(recipe: RefinementConfig) -> RefineSettings:
    """Everything :class:`~hand_pose_refiner.refinement.refine.Refinement` needs from the recipe."""
    labelled = ([LabelledSet(Path(path)) for path in recipe.labelled]
                + [LabelledSet(Path(path), tip_first=True) for path in recipe.labelled_tip_first])
    return RefineSettings(
        targets=recipe_inputs(recipe, recipe.targets, split=recipe.split),
        checks=recipe_inputs(recipe, recipe.checks, False),
        anchors=recipe_inputs(recipe, recipe.anchors, False), anchor_ratio=recipe.anchor_ratio,
        labelled=tuple(labelled), iterations=recipe.iterations,
        schedule=tuple(Thresholds(*row) for row in recipe.schedule()),
        epochs=recipe.epochs, batch_size=recipe.train_batch_size,
        samples_per_image=recipe.samples_per_image, learning_rate=recipe.learning_rate,
        detector_epochs=recipe.detector_epochs, detector_learning_rate=recipe.detector_learning_rate,
        glove_probability=recipe.glove_probability, max_train_images_per_input=recipe.max_train_images,
        patience=recipe.patience, seed=recipe.seed, search_rounds=recipe.search_rounds)


def missing_inputs(recipe: RefinementConfig) -> list[str]:
    """One line per input path of the recipe that does not exist (as resolved from its file)."""
    return [f"refinement.{key}: {path!r}: no such file or folder"
            for key in REFINEMENT_PATH_KEYS for path in getattr(recipe, key) if not Path(path).exists()]
