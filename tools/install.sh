#!/usr/bin/env bash
# Install vilref_mm and its pinned OpenMMLab stack into the active Python environment.
#
# Idempotent: when every pinned package is already importable at its pinned version it only
# (re)installs the plugin itself. mmcv 2.1.0 has no wheels on PyPI, so its sdist is built once
# per (mmcv, torch) pair, with compiled CPU ops, and the wheel is kept in a cache outside the
# repository ($VILREF_CACHE, default ~/.cache/vilref-mm): a kept machine re-installs in seconds.
#
# Environment: PYTHON (default python3), VILREF_CACHE, MAX_JOBS (mmcv build parallelism).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
CONSTRAINTS="$ROOT/requirements/constraints.txt"
CACHE=${VILREF_CACHE:-$HOME/.cache/vilref-mm}
PIP=("$PYTHON" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS")

say() { printf '[install] %s\n' "$*"; }
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$CONSTRAINTS"; }

TORCH=$(pin torch)
TORCHVISION=$(pin torchvision)
MMCV=$(pin mmcv)

# Fast path: everything pinned is importable at its pinned version (mmcv with its compiled ops).
if "$PYTHON" - "$CONSTRAINTS" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version

pins = {}
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if '==' in line:
        name, ver = line.split('==')
        pins[name.strip()] = ver.strip()
for name, ver in pins.items():
    if version(name).split('+')[0] != ver:
        sys.exit(1)
import mmcv.ops  # noqa: F401  compiled ops present and matching torch
import torchvision.ops  # noqa: F401
version('vilref_mm')
EOF
    say "pinned stack already installed; refreshing the editable vilref_mm install"
    "$PYTHON" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$ROOT"
    say "done"
    exit 0
fi

say "installing torch $TORCH + torchvision $TORCHVISION (a matching pair) and setuptools < 82"
"${PIP[@]}" "torch==$TORCH" "torchvision==$TORCHVISION" "setuptools>=77,<82" wheel

WHEELS="$CACHE/wheels/mmcv-$MMCV-torch-$TORCH"
if ! ls "$WHEELS"/mmcv-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV with compiled ops against torch $TORCH (no PyPI wheel exists;"
    say "this takes about 7-13 minutes on 2 cores and happens once per machine)"
    start=$(date +%s)
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==$MMCV" -d "$build"
    tar -xzf "$build"/mmcv-"$MMCV".tar.gz -C "$build"
    src="$build/mmcv-$MMCV"
    # torch >= 2.14 headers need C++20; mmcv's setup.py hard-codes older standards.
    if "$PYTHON" -c "import torch, sys; sys.exit(tuple(map(int, torch.__version__.split('.')[:2])) < (2, 14))"; then
        sed -i -e 's/-std=c++17/-std=c++20/g' -e 's/-std=c++14/-std=c++20/g' "$src/setup.py"
    fi
    mkdir -p "$build/out"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PYTHON" -m pip wheel --disable-pip-version-check -q \
        --no-deps --no-build-isolation "$src" -w "$build/out"
    mkdir -p "$WHEELS"
    for whl in "$build"/out/*.whl; do
        cp "$whl" "$WHEELS/.$(basename "$whl").tmp" && mv "$WHEELS/.$(basename "$whl").tmp" "$WHEELS/$(basename "$whl")"
    done
    say "built mmcv $MMCV in $(( $(date +%s) - start )) s; cached in $WHEELS"
else
    say "using cached mmcv wheel from $WHEELS"
fi

say "installing mmcv, mmengine, mmpretrain, mmsegmentation, transformers, jieba, cn-clip and test tools"
"${PIP[@]}" "$WHEELS"/mmcv-*.whl
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
"$PYTHON" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$ROOT"
"$PYTHON" -c "import mmcv.ops, mmseg.models, mmpretrain, vilref_mm; print('[install] stack OK: mmcv', mmcv.__version__)"
say "done"
