"""What tests import besides fixtures: the checkout's paths and the imports of optional extras.

An optional extra (ROS, the cluster extra Ray, OpenMMLab) that is missing skips its tests under
plain pytest and fails them where its environment variable asks for it (scripts/test.sh, CI):
HAND_POSE_REFINER_REQUIRE_ROS, HAND_POSE_REFINER_REQUIRE_CLUSTER, HAND_POSE_REFINER_REQUIRE_MMLAB.
"""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
LAUNCH_FILE = REPO / "launch" / "assembly.launch.py"


def launch_file_namespace(functions: set[str] = frozenset()) -> dict[str, object]:
    """What launch/assembly.launch.py defines without launch itself (not on PyPI): its imports from
    this package, its constants and the named ``functions``."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    body = [statement for statement in tree.body
            if (isinstance(statement, ast.ImportFrom)
                and (statement.module or "").startswith("hand_pose_refiner"))
            or isinstance(statement, ast.Assign)
            or (isinstance(statement, ast.FunctionDef) and statement.name in functions)]
    namespace: dict[str, object] = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(LAUNCH_FILE), "exec"), namespace)
    missing = set(functions) - set(namespace)
    assert not missing, f"launch file lacks {missing}"
    return namespace


def _require_ros() -> bool:
    return os.environ.get("HAND_POSE_REFINER_REQUIRE_ROS") == "1"


def import_or_skip_ros(module: str) -> object:
    """Import a ROS module; fail (scripts/test.sh, CI) or skip (plain pytest) when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if _require_ros():
            raise
        pytest.skip(f"{module} not importable ({exc}); run scripts/setup.sh")


def import_or_skip_cluster() -> object:
    """Import ray (the cluster extra); fail where it is required (scripts/test.sh, CI), else skip."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        if os.environ.get("HAND_POSE_REFINER_REQUIRE_CLUSTER") == "1":
            raise
        pytest.skip(f"ray not importable ({exc}); run scripts/setup.sh --cluster")


def import_mmlab_or_skip() -> None:
    """Import the OpenMMLab extra; fail where it must be there (scripts/test.sh runs the mmlab
    tests in .venv-mmlab with HAND_POSE_REFINER_REQUIRE_MMLAB=1), skip elsewhere."""
    try:
        importlib.import_module("mmcv.ops")
        importlib.import_module("mmdet")
        importlib.import_module("mmpose")
    except ImportError as exc:
        if os.environ.get("HAND_POSE_REFINER_REQUIRE_MMLAB") == "1":
            raise
        pytest.skip(f"the OpenMMLab extra is not installed in this environment ({exc}); "
                    f"scripts/test.sh runs these tests in .venv-mmlab (scripts/setup.sh --mmlab)")


def tiny_refine_args(stills: Path, out: Path) -> list[str]:
    """``hand-pose-refiner refine`` for one short CPU round on a folder of stills (conftest's
    ``tiny_refine_run``): one epoch each, batches of four, two frames per overlay grid."""
    return ["refine", str(stills), "--stills", "--out", str(out), "--iterations", "1", "--epochs", "1",
            "--detector-epochs", "1", "--train-batch-size", "4", "--samples-per-image", "1",
            "--search-rounds", "0", "--device", "cpu", "--threads", "1", "--quiet", "--grid-frames", "2"]
