#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh --test), then runs the linter, the type checker and the test
# suite; then sets up the OpenMMLab environment (scripts/setup.sh --test --mmlab, .venv-mmlab) and
# runs the tests marked `mmlab` there, where a missing mmdet or mmpose fails them instead of skipping them.
# Extra arguments go to the first pytest run, e.g. `bash scripts/test.sh -m "not slow"`;
# HAND_POSE_REFINER_SKIP_MMLAB=1 leaves out the OpenMMLab part (its first setup builds mmcv, about
# 10 minutes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HAND_POSE_REFINER_VENV:-$root/.venv}
mmlab_venv=${HAND_POSE_REFINER_MMLAB_VENV:-$root/.venv-mmlab}

bash "$root/scripts/setup.sh" --test
cd "$root"
"$venv/bin/ruff" check .
"$venv/bin/mypy"  # the package, as pyproject.toml [tool.mypy] says
# Missing ROS pieces fail the run here instead of skipping the tests that need them.
export HAND_POSE_REFINER_REQUIRE_ROS=1
# Likewise the cluster extra (Ray): its tests fail here when it is missing, never skip.
export HAND_POSE_REFINER_REQUIRE_CLUSTER=1
# The OpenMMLab tests run in their own environment below, not here (where they could only skip).
"$venv/bin/python" -m pytest -m "not mmlab" "$@"

if [ "${HAND_POSE_REFINER_SKIP_MMLAB:-0}" != 1 ]; then
  HAND_POSE_REFINER_VENV=$mmlab_venv bash "$root/scripts/setup.sh" --test --mmlab
  HAND_POSE_REFINER_REQUIRE_MMLAB=1 "$mmlab_venv/bin/python" -m pytest -m mmlab
fi
