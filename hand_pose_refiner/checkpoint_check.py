"""Whether the weight files a config names exist and load, with the loaders the live graph uses.

``config check`` reports each bad one in a line naming the key, the file and the problem, so a
wrong path in a parameter file is found before a node fails to configure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import USER_ERRORS

# What a checkpoint that does not load raises (a missing file is reported before loading).
LOAD_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError)

Loader = Callable[[Path], object]


def _model_loaders(config: Config) -> dict[str, Loader]:
    """The backend's own loader of each model checkpoint key (on the CPU: only loading is checked);
    any backend name but ``mmlab`` is checked with the default backend's loaders."""
    from hand_pose_refiner.models import backend  # torch: the config core stays light

    chosen = backend("mmlab" if config.models.backend == "mmlab" else "mediapipe")
    return {"models.detector_checkpoint": lambda p: chosen.load_detector(config, p),
            "models.pose_checkpoint": lambda p: chosen.load_estimator(config, p)}


def _load_activity_model(config: Config, path: Path) -> object:
    """As the activity node does: a reach recogniser or a window classifier, by the file's format."""
    from hand_pose_refiner.activity.packaged import load_recognizer  # torch: the config core stays light

    return load_recognizer(replace(config.activity, checkpoint=str(path)))


def _checkpoints(config: Config) -> dict[str, str]:
    return {"models.detector_checkpoint": config.models.detector_checkpoint,
            "models.pose_checkpoint": config.models.pose_checkpoint,
            "activity.checkpoint": config.activity.checkpoint}


def checkpoint_problems(config: Config) -> list[str]:
    """One line per checkpoint key whose file is missing or does not load; empty keys are skipped."""
    named = {key: Path(value) for key, value in _checkpoints(config).items() if value}
    if not named:
        return []
    loaders = {**_model_loaders(config), "activity.checkpoint": lambda p: _load_activity_model(config, p)}
    problems = []
    for key, path in named.items():
        if not path.is_file():
            problems.append(f"{key} = {str(path)!r}: no such file")
            continue
        try:
            loaders[key](path)
        except LOAD_ERRORS as exc:
            problems.append(f"{key} = {str(path)!r}: does not load: {exc}")
    return problems
