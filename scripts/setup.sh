#!/usr/bin/env bash
# Installs jupyter-ai-vision (editable) with one Jupyter AI host into a virtual environment.
#
# Usage: scripts/setup.sh [--test] [--host 2|3] [--latest]
#   --host 2   Jupyter AI 2.x into .venv (default)
#   --host 3   jupyter-ai[jupyternaut,rtc] 3.x into .venv-jai3
#   --host 3-jsd  jupyter-ai[jupyternaut,rtc-jsd] 3.x (jupyter-server-documents instead of
#              jupyter-collaboration, which it disables) into .venv-jai3-jsd
#   --test     also the test, charts and dev extras, and Debian's chromium (browser tests)
#   --latest   the newest releases the ranges allow, ignoring constraints/ (into .venv-latest-*)
# VENV=path overrides the environment's location; PYTHON=python3.12 the interpreter.
#
# Reproducible by default: versions come from constraints/jupyter-ai-<host>.txt (the versions
# CI tested; refresh them with scripts/refresh-constraints.sh). Idempotent: when pyproject.toml,
# the constraints file and the options are unchanged since the last successful run, pip is not
# called again (the install is editable, so code changes need no reinstall).
set -euo pipefail
cd "$(dirname "$0")/.."

host=2 test=0 latest=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --test) test=1 ;;
    --host) host="$2"; shift ;;
    --host=*) host="${1#--host=}" ;;
    --latest) latest=1 ;;
    *) echo "setup.sh: unknown option $1 (see the comment at the top of the script)" >&2; exit 2 ;;
  esac
  shift
done

case "$host" in
  2) default_venv=.venv; spec=(-e ".[jupyter-ai-2__EXTRAS__]") ;;
  3) default_venv=.venv-jai3; spec=(-e ".[jupyter-ai-3__EXTRAS__]" "jupyter-ai[jupyternaut,rtc]") ;;
  3-jsd) default_venv=.venv-jai3-jsd
    spec=(-e ".[jupyter-ai-3__EXTRAS__]" "jupyter-ai[jupyternaut,rtc-jsd]") ;;
  *) echo "setup.sh: --host must be 2, 3 or 3-jsd, not '$host'" >&2; exit 2 ;;
esac
extras=""
[[ $test == 1 ]] && extras=",test,charts,dev"
spec=("${spec[@]/__EXTRAS__/$extras}")
if [[ $latest == 1 ]]; then
  default_venv=".venv-latest-$host"
  pins=(--upgrade --upgrade-strategy eager)
  constraints=""
else
  constraints="constraints/jupyter-ai-$host.txt"
  pins=(-c "$constraints")
fi
VENV="${VENV:-$default_venv}"
PYTHON="${PYTHON:-python3}"
export LITELLM_LOCAL_MODEL_COST_MAP=True PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ $test == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium (browser tests)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "== creating $VENV ($("$PYTHON" --version))"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
fi

# What this install depends on; the same fingerprint as last time means nothing to do.
# (--latest always asks pip: "newest" changes without any file changing.)
stamp="$VENV/.jupyter-ai-vision-setup"
fingerprint=$(
  {
    echo "${spec[*]} ${pins[*]}"
    "$VENV/bin/python" --version
    cat pyproject.toml
    if [[ -n "$constraints" ]]; then cat "$constraints"; fi
  } | sha256sum | cut -d' ' -f1
)
if [[ $latest == 0 && -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]] \
  && "$VENV/bin/python" -c "import jupyter_ai_vision" 2>/dev/null; then
  echo "== $VENV is up to date (Jupyter AI $host.x${extras:+, test extras})"
  exit 0
fi

rm -f "$stamp"
echo "== installing into $VENV: ${spec[*]} ${pins[*]}"
# pip's exit status is the script's (set -e stops on any failure); only stderr is filtered, of
# the noise about package directories that do not exist on this machine.
"$VENV/bin/python" -m pip install -q "${pins[@]}" "${spec[@]}" \
  2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -c "import jupyter_ai_vision"
if [[ $test == 1 ]]; then
  # matplotlib builds its font cache on first import (tens of seconds on a fresh machine):
  # build it now, not inside the first kernel a test (or a user's first plot) starts.
  MPLBACKEND=Agg "$VENV/bin/python" -c "import matplotlib.pyplot"
fi
echo "$fingerprint" > "$stamp"
