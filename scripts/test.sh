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
cd "$ROOT"
PATH="$ROOT/.venv/bin:$PATH" exec "$ROOT/.venv/bin/python" -m pytest "$@"
