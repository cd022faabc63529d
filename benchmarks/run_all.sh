#!/usr/bin/env bash
# Run every benchmark, each in its host's environment, one after another (they time things:
# never two at once), and write everything to out/benchmarks-<UTC date and time>.txt.
#
#   bash benchmarks/run_all.sh            # the full run (~15-25 min on 2 cores)
#   bash benchmarks/run_all.sh --quick    # smaller inputs where a script has --quick (smoke run)
#   bash benchmarks/run_all.sh bench_see bench_mcp   # only these
#
# Environments: Jupyter AI 2.x = $JAV_ENV2 (default .venv); Jupyter AI 3.x = $JAV_ENV3
# (default: the first of .venv-jai3, /work/venv3 that registers our entry points). Each
# script prints its figures with a baseline measured in the same run; a script that fails or
# misses a target it checks exits non-zero, is listed at the end, and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."

env2=${JAV_ENV2:-.venv}
# A 3.x environment whose install of this package is current: an editable install made before
# pyproject.toml gained an entry point does not register it (re-run pip install -e to refresh).
has_our_persona() {
  "$1/bin/python" -c 'import importlib.metadata as m, sys
sys.exit(not any(e.value.startswith("jupyter_ai_vision.") for e in m.entry_points(group="jupyter_ai.personas")))' 2>/dev/null
}
stale3=""
if [[ -n ${JAV_ENV3:-} ]]; then env3=$JAV_ENV3
else
  env3=""
  for candidate in .venv-jai3 /work/venv3; do
    [[ -x $candidate/bin/python ]] || continue
    if has_our_persona "$candidate"; then env3=$candidate; break; fi
    stale3+=" $candidate"
  done
  env3=${env3:-.venv-jai3}
fi
export LITELLM_LOCAL_MODEL_COST_MAP=True
export BROWSER_PATH=${BROWSER_PATH:-/usr/bin/chromium}

quick=0
only=()
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) only+=("${arg%.py}") ;;
  esac
done

# name | environment | arguments (full run) | arguments (--quick)
benchmarks=(  # the README's headline figures first
  "bench_context|$env2||--runs 3"
  "bench_provider|$env2||--runs 3 --calls 20"
  "bench_see|$env2||--quick"
  "bench_completion|$env2||--runs 100 --requests 200"
  "bench_stale_captions|$env2||--runs 5"
  "bench_persona|$env3||--quick"
  "bench_mcp|$env3||--quick"
  "bench_charts|$env2||"
  "bench_ai_repr|$env2||--n 10"
  "bench_images|$env2||"
  "bench_bounds|$env2||"
  "bench_hostile|$env2||"
)

mkdir -p out
stamp=$(date -u +%Y-%m-%dT%H%M)
log=out/benchmarks-$stamp.txt
failed=()
{
  echo "benchmarks run $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname), $(nproc) CPUs"
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet -- jupyter_ai_vision benchmarks || echo ' (working tree modified)')"
  echo "2.x env: $env2 (jupyter-ai $("$env2/bin/python" -c 'import importlib.metadata as m; print(m.version("jupyter_ai"))' 2>&1))"
  echo "3.x env: $env3 (jupyter-ai $("$env3/bin/python" -c 'import importlib.metadata as m; print(m.version("jupyter_ai"))' 2>&1))"
  [[ -n $stale3 ]] && echo "skipped 3.x env(s) without our entry points (stale editable install):$stale3"
  [[ $quick == 1 ]] && echo "QUICK run: smaller inputs, figures not comparable to the README"
} | tee "$log"

for entry in "${benchmarks[@]}"; do
  IFS='|' read -r name env full quick_args <<<"$entry"
  if ((${#only[@]})) && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  args=$full
  [[ $quick == 1 ]] && args=$quick_args
  {
    echo
    echo "=================================================================================="
    echo "== $name ($env) $args"
    echo "== start $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "=================================================================================="
  } | tee -a "$log"
  start=$(date +%s)
  # shellcheck disable=SC2086  # $args is a list of options
  "$env/bin/python" "benchmarks/$name.py" $args 2>&1 \
    | grep --line-buffered -v 'Kernel is running over TCP without encryption' | tee -a "$log"
  status=${PIPESTATUS[0]}
  echo "== $name: exit $status after $(($(date +%s) - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$log"
  [[ $status == 0 ]] || failed+=("$name")
done

{
  echo
  if ((${#failed[@]})); then echo "FAILED: ${failed[*]}"; else echo "all benchmarks ran"; fi
  echo "written to $log"
} | tee -a "$log"
((${#failed[@]} == 0))
