#!/bin/sh
# Create or refresh the project's virtual environment (idempotent), one per variant:
#
#   sh scripts/setup_env.sh             # the GPU variant if nvidia-smi sees a GPU, else CPU
#   GPU=0 sh scripts/setup_env.sh       # CPU, in .venv: mxnet 1.9.1 + Horovod (MXNet, Gloo)
#   GPU=1 sh scripts/setup_env.sh       # CUDA, in .venv-gpu: mxnet-cu112 + the CUDA 11
#                                       # libraries from PyPI + Horovod (NCCL with nvcc 11)
#   WITH_LM=0 sh scripts/setup_env.sh   # skip the optional beam-search/KenLM extra
#   sh scripts/setup_env.sh --print-venv  # where the chosen variant's venv is
#
# The variants never share a venv: mxnet and mxnet-cu112 install the same module, so one
# would silently replace the other. A venv holding the other variant's MXNet is refused.
#
# A second run compares two stamps and returns in about a second: the packages (a hash of
# the requirement file, pyproject.toml, WITH_LM and the checkout's path, which the editable
# install of gluon_ds2 points at) and Horovod (its version, the MXNet it
# was built against and its GPU operations). Horovod compiles against the installed MXNet,
# so it is built here, after mxnet, and only when `horovodrun --check-build` lacks MXNet,
# Gloo or (GPU) NCCL support: a changed requirement file alone does not rebuild it.
#
# The GPU variant needs only the NVIDIA driver: cudart, cuBLAS, cuDNN 8, NCCL, cuFFT,
# cuRAND, cuSOLVER, NVRTC and NVTX come from PyPI's nvidia-*-cu11 wheels, and
# <venv>/bin/cuda-env.sh puts their folders on LD_LIBRARY_PATH (sourced by the venv's
# activate script and by run.sh; horovodrun passes the variable on to every rank).
# Horovod's NCCL operations also need a CUDA 11 toolkit's nvcc (CUDA_HOME, or
# /usr/local/cuda*): without one Horovod is built for CPU tensors only, and the setup says so.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WITH_LM=${WITH_LM:-1}
if [ -z "${GPU:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        GPU=1
    else
        GPU=0
    fi
fi
if [ "$GPU" = 1 ]; then
    VARIANT=gpu VENV=${GLUON_DS2_VENV:-$ROOT/.venv-gpu} REQS=$ROOT/requirements-gpu.txt
    MXNET=mxnet-cu112 OTHER_MXNET=mxnet
else
    VARIANT=cpu VENV=${GLUON_DS2_VENV:-$ROOT/.venv} REQS=$ROOT/requirements.txt
    MXNET=mxnet OTHER_MXNET=mxnet-cu112
fi
if [ "${1:-}" = --print-venv ]; then
    echo "$VENV"
    exit 0
fi
PACKAGES_STAMP=$VENV/.gluon_ds2_packages
HOROVOD_STAMP=$VENV/.gluon_ds2_horovod
WANT=$( (echo "variant=$VARIANT root=$ROOT"; cat "$REQS" "$ROOT/pyproject.toml"; echo "lm=$WITH_LM") \
    | sha256sum | cut -c1-16)
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
CUDA_ENV=$VENV/bin/cuda-env.sh

# A CUDA 11 toolkit for Horovod's NCCL build (GPU variant): CUDA_HOME or a usual place.
NVCC_HOME=
if [ "$VARIANT" = gpu ]; then
    for dir in ${CUDA_HOME:-} /usr/local/cuda /usr/local/cuda-11*; do
        if [ -x "$dir/bin/nvcc" ] && "$dir/bin/nvcc" --version | grep -q 'release 11\.'; then
            NVCC_HOME=$dir
            break
        fi
    done
fi
HOROVOD_WANT="horovod==0.28.1 variant=$VARIANT nccl=${NVCC_HOME:+yes}"

horovod_built() {  # Horovod is importable with MXNet, Gloo and (if wanted) NCCL support
    [ -x "$VENV/bin/horovodrun" ] || return 1
    check=$(if [ -f "$CUDA_ENV" ]; then . "$CUDA_ENV"; fi; "$VENV/bin/horovodrun" --check-build \
        2>/dev/null) || return 1
    echo "$check" | grep -q '\[X\] MXNet' && echo "$check" | grep -q '\[X\] Gloo' || return 1
    if [ -n "$NVCC_HOME" ]; then echo "$check" | grep -q '\[X\] NCCL' || return 1; fi
}

if [ -f "$PACKAGES_STAMP" ] && [ "$(cat "$PACKAGES_STAMP")" = "$WANT" ] && \
        [ -f "$HOROVOD_STAMP" ] && [ "$(cat "$HOROVOD_STAMP")" = "$HOROVOD_WANT" ]; then
    exit 0
fi

START=$(date +%s)
if [ "$VARIANT" = gpu ]; then
    echo "[setup] GPU variant (GPU=1, or nvidia-smi found a GPU) in $VENV" >&2
else
    echo "[setup] CPU variant (no GPU found, or GPU=0) in $VENV" >&2
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if $PIP show "$OTHER_MXNET" >/dev/null 2>&1; then
    echo "[setup] $VENV holds $OTHER_MXNET, but the $VARIANT variant installs $MXNET (the same" \
         "'mxnet' module). Not replacing it: choose the variant with GPU=0 or GPU=1, or another" \
         "venv with GLUON_DS2_VENV=DIR." >&2
    exit 1
fi

if [ ! -f "$PACKAGES_STAMP" ] || [ "$(cat "$PACKAGES_STAMP")" != "$WANT" ]; then
    echo "[setup] installing packages from $(basename "$REQS") (first run takes a few minutes)" >&2
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
    if [ "$VARIANT" = gpu ]; then
        # The nvidia-*-cu11 wheels' library folders, for every process of this venv.
        LIB_DIRS=$("$VENV/bin/python" -c "
import glob, os, sysconfig
nvidia = os.path.join(sysconfig.get_paths()['purelib'], 'nvidia')
print(':'.join(sorted(glob.glob(os.path.join(nvidia, '*', 'lib')))))")
        cat > "$CUDA_ENV" <<EOF
# Written by scripts/setup_env.sh: the CUDA 11 libraries mxnet-cu112 loads, from the
# nvidia-*-cu11 wheels. Source it before python or horovodrun (run.sh and bin/activate do).
case ":\${LD_LIBRARY_PATH:-}:" in
    *":${LIB_DIRS%%:*}:"*) ;;
    *) export LD_LIBRARY_PATH="$LIB_DIRS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" ;;
esac
EOF
        grep -q 'cuda-env.sh' "$VENV/bin/activate" || \
            printf '\n. "%s"  # gluon-ds2: CUDA 11 libraries\n' "$CUDA_ENV" >> "$VENV/bin/activate"
    fi
    echo "$WANT" > "$PACKAGES_STAMP"
fi

if [ "$VARIANT" = gpu ] && ! (. "$CUDA_ENV"; "$VENV/bin/python" -c 'import mxnet') 2>/dev/null
then
    (. "$CUDA_ENV"; "$VENV/bin/python" -c 'import mxnet') 2>&1 | tail -1 >&2
    echo "[setup] mxnet-cu112 does not load (above). libcuda.so.1 comes with the NVIDIA driver:" \
         "is it installed? Horovod's build imports mxnet, so it stops here." >&2
    exit 1
fi
if ! horovod_built; then
    echo "[setup] building Horovod 0.28.1 against $MXNET (a few minutes)" >&2
    if [ -n "$NVCC_HOME" ]; then
        # The same NCCL as mxnet-cu112 loads at run time: the nvidia-nccl-cu11 wheel's
        # (its libnccl.so.2 needs a libnccl.so beside it for the linker).
        NCCL_DIR=$("$VENV/bin/python" -c "
import os, sysconfig; print(os.path.join(sysconfig.get_paths()['purelib'], 'nvidia', 'nccl'))")
        mkdir -p "$VENV/nccl-link"
        ln -sf "$NCCL_DIR/lib/libnccl.so.2" "$VENV/nccl-link/libnccl.so"
        export HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME=$NVCC_HOME \
            HOROVOD_NCCL_INCLUDE=$NCCL_DIR/include HOROVOD_NCCL_LIB=$VENV/nccl-link \
            HOROVOD_NCCL_LINK=SHARED
    elif [ "$VARIANT" = gpu ]; then
        echo "[setup] WARNING: no CUDA 11 toolkit (nvcc) in CUDA_HOME or /usr/local/cuda*:" \
             "Horovod is built without NCCL, for CPU tensors only. One process still drives" \
             "several GPUs (--num_gpus, --devices); for horovodrun on GPUs install a CUDA 11" \
             "toolkit and re-run with CUDA_HOME=/path/to/cuda-11.x." >&2
    fi
    (if [ -f "$CUDA_ENV" ]; then . "$CUDA_ENV"; fi
     HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
     HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
         $PIP install --no-build-isolation --no-cache-dir --force-reinstall --no-deps \
         "horovod==0.28.1" && $PIP install --no-build-isolation "horovod==0.28.1")
    if ! horovod_built; then
        (if [ -f "$CUDA_ENV" ]; then . "$CUDA_ENV"; fi
         "$VENV/bin/horovodrun" --check-build) >&2 || true
        echo "[setup] Horovod was built without MXNet, Gloo${NVCC_HOME:+ or NCCL} support" >&2
        exit 1
    fi
fi
echo "$HOROVOD_WANT" > "$HOROVOD_STAMP"
echo "[setup] environment ready in $(( $(date +%s) - START )) s: $MXNET, Horovod" \
     "(Gloo${NVCC_HOME:+, NCCL})" >&2
