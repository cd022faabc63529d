#!/usr/bin/env bash
# Installs everything the project needs into a virtual environment (default: ./.venv).
# Usage: scripts/setup.sh [--test]   (--test also installs test extras and Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export LITELLM_LOCAL_MODEL_COST_MAP=True
if [[ "${1:-}" == "--test" ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium (browser tests)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
echo "== installing jupyter-ai-vision$extras"
"$VENV/bin/python" -m pip install -q -e ".$extras" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import jupyter_ai_vision" 
