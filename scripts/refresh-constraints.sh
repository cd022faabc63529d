#!/usr/bin/env bash
# Deliberately moves CI to the newest releases: rebuilds .venv-latest-2 / -3 / -3-jsd from
# scratch with the newest versions our ranges allow, runs the whole test command there, and only
# if it passes writes their versions to constraints/jupyter-ai-{2,3,3-jsd}.txt.
# Review the diff (git diff constraints/) and commit it.
#
#   bash scripts/refresh-constraints.sh            test, then write
#   bash scripts/refresh-constraints.sh --no-test  write without testing (then run scripts/test.sh)
# HOSTS="3" refreshes one host only; PYTHON=python3.x picks the interpreter (CI uses 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
hosts="${HOSTS:-2 3 3-jsd}"
for host in $hosts; do rm -rf ".venv-latest-$host"; done
if [[ "${1:-}" == "--no-test" ]]; then
  for host in $hosts; do VENV=".venv-latest-$host" bash scripts/setup.sh --test --latest --host "$host"; done
else
  HOSTS="$hosts" bash scripts/test-latest.sh
fi
mkdir -p constraints
for host in $hosts; do
  out="constraints/jupyter-ai-$host.txt"
  {
    echo "# Versions CI tests with Jupyter AI host $host ($(".venv-latest-$host/bin/python" --version))."
    echo "# Written by scripts/refresh-constraints.sh on $(date -u +%Y-%m-%d); do not edit by hand."
    ".venv-latest-$host/bin/python" -m pip freeze --exclude-editable \
      | grep -v -i -E "^(#|jupyter[-_]ai[-_]vision)"
  } > "$out"
  echo "== wrote $out ($(grep -c -v '^#' "$out") packages)"
done
