#!/usr/bin/env bash
# Trains the reach recogniser that ships as the default activity model
# (hand_pose_refiner/activity/weights/reach_rtg_object_size.safetensors; activity.checkpoint empty).
#
#   bash scripts/train_default_activity.sh [RTG_DIR] [OUT]
#
# RTG_DIR: the reach-to-grasp recordings (default ../shared/data/hand_actions/rtg_object_size);
# OUT: where to write (default: the packaged file). All 8 participants, seed 0, 20 epochs, one
# torch thread: the same data and command write the same bytes (the recordings are filtered in
# $JOBS processes, which does not change the result). Python: $PYTHON, else .venv/bin/python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data/hand_actions/rtg_object_size}
out=${2:-hand_pose_refiner/activity/weights/reach_rtg_object_size.safetensors}
py=${PYTHON:-.venv/bin/python}
"$py" -m hand_pose_refiner.cli train-activity --rtg "$data" --seed 0 --epochs 20 --threads 1 \
  --jobs "${JOBS:-2}" --out "$out"
