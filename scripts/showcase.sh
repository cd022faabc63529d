#!/usr/bin/env bash
# The main job: set up, execute examples/showcase.ipynb with a real kernel, and write
# what the model would see as an HTML report (out/showcase-report.html) plus a JSON summary.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
scripts/setup.sh --test
export LITELLM_LOCAL_MODEL_COST_MAP=True PATH="$VENV/bin:$PATH"
mkdir -p out
# the notebook links images relative to itself: keep them beside the executed copy
cp -r examples/images out/
"$VENV/bin/jupyter" nbconvert --to notebook --execute examples/showcase.ipynb --output-dir out --output showcase.ipynb
"$VENV/bin/jupyter-ai-vision" inspect out/showcase.ipynb --html out/showcase-report.html
"$VENV/bin/jupyter-ai-vision" inspect out/showcase.ipynb --json > out/showcase-report.json
echo "report: out/showcase-report.html"
