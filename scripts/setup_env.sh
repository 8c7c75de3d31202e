#!/bin/sh
# Create or refresh the project's virtual environment in .venv (idempotent).
#
#   sh scripts/setup_env.sh            # CPU: mxnet 1.9.1 + Horovod (MXNet, Gloo)
#   GPU=1 sh scripts/setup_env.sh      # CUDA 11.2: mxnet-cu112 + Horovod with NCCL
#   WITH_LM=0 sh scripts/setup_env.sh  # skip the optional beam-search/KenLM extra
#
# A second run checks a stamp (hash of the requirement files and this script)
# and returns in about a second. Horovod compiles against the installed MXNet,
# so it is built here, after mxnet, not from requirements.txt.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${GLUON_DS2_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
REQS=$ROOT/requirements.txt
if [ "${GPU:-0}" = 1 ]; then REQS=$ROOT/requirements-gpu.txt; fi
STAMP=$VENV/.gluon_ds2_stamp
WITH_LM=${WITH_LM:-1}
WANT=$( (cat "$REQS" "$ROOT/scripts/setup_env.sh" "$ROOT/pyproject.toml"; \
    echo "lm=$WITH_LM") | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/horovodrun" ]; then
    exit 0
fi

echo "[setup] building environment in $VENV (first run takes a few minutes)" >&2
START=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip setuptools wheel
# gluonnlp 0.10 and horovod build against the installed numpy/mxnet: no build isolation.
$PIP install "cmake<4" cython "numpy>=1.21,<1.24"
$PIP install --no-build-isolation -r "$REQS"
$PIP install --no-build-isolation --no-deps -e "$ROOT"
if [ "$WITH_LM" = 1 ]; then
    $PIP install -e "$ROOT[lm]"
    # KenLM's build_binary (ARPA -> binary model) is not in the pip package;
    # compile it from the same source release (about 15 s).
    if [ ! -x "$VENV/bin/build_binary" ]; then
        KENLM_SRC=$(mktemp -d)
        $PIP download --no-deps --no-binary :all: --no-build-isolation kenlm==0.3.0 \
            -d "$KENLM_SRC"
        tar xzf "$KENLM_SRC"/kenlm-0.3.0.tar.gz -C "$KENLM_SRC"
        (cd "$KENLM_SRC/kenlm-0.3.0" && g++ -w -O2 -DNDEBUG -DKENLM_MAX_ORDER=6 \
            -DHAVE_CLOCKGETTIME -std=c++11 -I. \
            $(ls util/*.cc lm/*.cc util/double-conversion/*.cc | grep -v 'main.cc\|test.cc') \
            lm/build_binary_main.cc -o "$VENV/bin/build_binary" -lrt)
        rm -rf "$KENLM_SRC"
    fi
fi

if [ "${GPU:-0}" = 1 ]; then
    export HOROVOD_GPU_OPERATIONS=NCCL
fi
HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    $PIP install --no-build-isolation --no-cache-dir "horovod==0.28.1"

CHECK=$("$VENV/bin/horovodrun" --check-build)
echo "$CHECK" | grep -q '\[X\] MXNet' || { echo "$CHECK" >&2; echo "[setup] Horovod was built without MXNet support" >&2; exit 1; }
echo "$CHECK" | grep -q '\[X\] Gloo' || { echo "$CHECK" >&2; echo "[setup] Horovod was built without Gloo support" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup] environment ready in $(( $(date +%s) - START )) s" >&2
