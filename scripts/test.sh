#!/usr/bin/env bash
# The test command (CI runs exactly this: .ci/run).
#
#   bash scripts/test.sh            full: set up both hosts from constraints/, ruff, mypy, and the
#                                   whole suite once per host (Jupyter AI 2.x in .venv, 3.x in
#                                   .venv-jai3; each host's own tests are selected by marker), then
#                                   the jsd tests in .venv-jai3-jsd (3.x on jupyter-server-documents)
#   bash scripts/test.sh --fast     inner loop: ruff and the pure and unit tests (no kernel, no
#                                   server, no browser) in .venv; installs only if .venv is missing
#   bash scripts/test.sh -- ARGS    extra arguments for pytest (e.g. -- tests/test_cli.py -x)
#
# HOSTS="3" (or "2", "3-jsd", default "2 3 3-jsd") picks the hosts; LATEST=1 uses the newest releases instead of
# the constraints (that is scripts/test-latest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True PIP_DISABLE_PIP_VERSION_CHECK=1

fast=0
pytest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fast) fast=1 ;;
    --) shift; pytest_args+=("$@"); break ;;
    *) pytest_args+=("$1") ;;
  esac
  shift
done
latest="${LATEST:-0}"
if [[ $fast == 1 ]]; then hosts="${HOSTS:-2}"; else hosts="${HOSTS:-2 3 3-jsd}"; fi

venv_for() {  # the environment of one host
  if [[ $latest == 1 ]]; then echo ".venv-latest-$1"
  elif [[ $1 == 2 ]]; then echo .venv
  elif [[ $1 == 3 ]]; then echo .venv-jai3
  else echo .venv-jai3-jsd; fi
}

start=$SECONDS
for host in $hosts; do
  venv=$(venv_for "$host")
  if [[ $fast == 1 && -x "$venv/bin/pytest" ]]; then continue; fi
  setup_args=(--test --host "$host")
  [[ $latest == 1 ]] && setup_args+=(--latest)
  VENV="$venv" bash scripts/setup.sh "${setup_args[@]}"
done

# Every check runs even when an earlier one fails (one run shows everything); the exit status
# is non-zero if any failed.
status=0
failed=()
check() {  # check NAME COMMAND...
  local name="$1"; shift
  if ! "$@"; then status=1; failed+=("$name"); fi
}

lint_venv=$(venv_for "${hosts%% *}")
lint_paths=(jupyter_ai_vision tests benchmarks hooks)
echo "== ruff"
check "ruff check" "$lint_venv/bin/ruff" check "${lint_paths[@]}" examples
# examples/: notebooks are linted but keep their own formatting
check "ruff format" "$lint_venv/bin/ruff" format --check "${lint_paths[@]}"

if [[ $fast == 1 ]]; then
  venv=$(venv_for "${hosts%% *}")
  echo "== pytest (fast tier: not kernel, not server, not browser, not slow) in $venv"
  JAV_FAST_TIER=1 check "pytest --fast" "$venv/bin/python" -m pytest -q \
    -m "not kernel and not server and not browser and not slow" ${pytest_args[@]+"${pytest_args[@]}"}
  echo "== fast tier done in $((SECONDS - start)) s: ${failed[*]:-passed}"
  exit $status
fi

for host in $hosts; do
  venv=$(venv_for "$host")
  # Each host type-checks its own adapters against the API it really has installed (3-jsd has
  # the same Jupyter AI as 3; only its collaboration server differs, which we duck-type).
  if [[ $host != 3-jsd ]]; then
    echo "== mypy in $venv (Jupyter AI $host.x)"
    check "mypy ($host.x)" "$venv/bin/mypy"
  fi
  # in the 3-jsd environment conftest.py selects the tests marked jsd, and only those
  echo "== pytest in $venv (Jupyter AI $host.x)"
  check "pytest ($host.x)" "$venv/bin/python" -m pytest ${pytest_args[@]+"${pytest_args[@]}"}
done
echo "== done in $((SECONDS - start)) s: ${failed[*]:+FAILED: }${failed[*]:-passed}"
exit $status
