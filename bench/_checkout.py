"""Imported first by every bench script, so that it runs this checkout's code.

A bench script runs as ``.venv/bin/python bench/NAME.py``, which puts ``bench/`` on ``sys.path``
but not the repository root: the virtual environment's installed (non-editable) copy of
hand_pose_refiner would be imported instead of the checkout. This puts the root first.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
