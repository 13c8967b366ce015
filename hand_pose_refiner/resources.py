"""Finding the package's shared files (config/, msg/, launch/) wherever it is installed.

A source checkout has them next to the Python package; ``pip install`` puts them under
``<prefix>/share/hand_pose_refiner`` and colcon under ``<install>/share/hand_pose_refiner``
(listed in ``AMENT_PREFIX_PATH``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "hand_pose_refiner"


def share_directories() -> list[Path]:
    """Candidate share folders, most specific first: checkout, Python prefix, ament prefixes."""
    candidates = [Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / PACKAGE_NAME]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE_NAME)
    return candidates


def find_share_file(relative: str) -> Path:
    """The first existing ``relative`` path (e.g. ``config/assembly.yaml``) in the share folders."""
    for directory in share_directories():
        path = directory / relative
        if path.exists():
            return path
    searched = ", ".join(str(d) for d in share_directories())
    raise FileNotFoundError(f"{relative} not found in any of: {searched}")
