#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh --test), then runs the linter and the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HAND_POSE_REFINER_VENV:-$root/.venv}

bash "$root/scripts/setup.sh" --test
cd "$root"
"$venv/bin/ruff" check .
# Missing ROS pieces fail the run here instead of skipping the tests that need them.
export HAND_POSE_REFINER_REQUIRE_ROS=1
# Likewise the cluster extra (Ray): its tests fail here when it is missing, never skip.
export HAND_POSE_REFINER_REQUIRE_CLUSTER=1
"$venv/bin/python" -m pytest "$@"
