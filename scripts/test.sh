#!/usr/bin/env bash
# The test command: installs what the tests need, then runs ruff, mypy and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
scripts/setup.sh --test
export LITELLM_LOCAL_MODEL_COST_MAP=True PATH="$VENV/bin:$PATH"
echo "== ruff"
"$VENV/bin/ruff" check jupyter_ai_vision tests benchmarks examples
"$VENV/bin/ruff" format --check jupyter_ai_vision tests benchmarks
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/python" -m pytest "$@"
