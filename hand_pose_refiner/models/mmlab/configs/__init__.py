"""The built-in OpenMMLab model configs, as mmengine config dicts.

``paper`` is what arXiv 2307.03007 used (Cascade R-CNN R50-FPN, HRNetV2-w18 at 256x256);
``small`` keeps the same architectures but shrinks them (ResNet-18 backbone, a one-module HRNet at
64x64) so that they train in seconds on a CPU, for tests and smoke runs. Both carry no model-zoo
initialisation (nothing is downloaded): weights come from a checkpoint or a random start.
"""

from __future__ import annotations

from typing import Any

from hand_pose_refiner.models.mmlab.configs.detector import cascade_rcnn
from hand_pose_refiner.models.mmlab.configs.pose import hand_metainfo, hrnet_topdown

BUILTIN = ("paper", "small")


def builtin_config(kind: str, name: str) -> dict[str, Any]:
    """The built-in config ``name`` (``paper`` or ``small``) of ``kind`` (``detector`` or ``pose``)."""
    if name not in BUILTIN:
        raise KeyError(f"no built-in {kind} config {name!r}; built-in: {', '.join(BUILTIN)}")
    if kind == "detector":
        return cascade_rcnn(small=name == "small")
    if kind == "pose":
        return hrnet_topdown(small=name == "small")
    raise KeyError(f"unknown model kind {kind!r}")


__all__ = ["BUILTIN", "builtin_config", "cascade_rcnn", "hand_metainfo", "hrnet_topdown"]
