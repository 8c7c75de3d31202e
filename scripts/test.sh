#!/bin/sh
# Run the test suite in the project's environment (built on first use):
#
#   sh scripts/test.sh                 # everything, slow tests included
#   sh scripts/test.sh -m "not slow"   # quick subset
#
# Extra arguments go to pytest.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
sh "$ROOT/scripts/setup_env.sh"
VENV=$(sh "$ROOT/scripts/setup_env.sh" --print-venv)
if [ -f "$VENV/bin/cuda-env.sh" ]; then . "$VENV/bin/cuda-env.sh"; fi
cd "$ROOT"
PATH="$VENV/bin:$PATH" exec "$VENV/bin/python" -m pytest "$@"
