#!/usr/bin/env bash
# The README's figures before the reorganisation, re-measured on today's machine next to
# today's code: for each benchmark, the script as it was at COMMIT (default b4fc1e6, the last
# commit before the move, whose figures the README showed) runs against that commit's package,
# then today's script against today's package, one right after the other (same load, same
# 2.x environment, same installed dependencies). Output: out/compare-<UTC date and time>.txt.
#
#   bash benchmarks/compare_before_move.sh [--commit SHA] [bench_context bench_see ...]
#
# The old tree is unpacked with `git archive` into a temporary directory (the repository and
# the shared working tree are not touched) and put first on PYTHONPATH, with a dist-info
# carrying the old entry points, so the Jupyter server (bench_see) loads the old provider.
set -uo pipefail
cd "$(dirname "$0")/.."

commit=b4fc1e6
names=()
while (($#)); do
  case $1 in
    --commit) commit=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) names+=("${1%.py}") ;;
  esac
  shift
done
((${#names[@]})) || names=(bench_context bench_completion bench_provider bench_see)

py=$(realpath "${JAV_ENV2:-.venv}")/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP=True
old=$(mktemp -d /tmp/jav-before-move-XXXX)
trap 'rm -rf "$old"' EXIT
git archive "$commit" | tar -x -C "$old"
# Entry points as the old pyproject declared them (first on sys.path wins over the install).
dist=$old/jupyter_ai_vision-0.0.0.dist-info
mkdir -p "$dist"
printf 'Metadata-Version: 2.1\nName: jupyter-ai-vision\nVersion: 0.0.0\n' >"$dist/METADATA"
"$py" - "$old/pyproject.toml" >"$dist/entry_points.txt" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for group, entries in {"console_scripts": project.get("scripts", {}),
                       **project.get("entry-points", {})}.items():
    print(f"[{group}]")
    print("\n".join(f"{name} = {value}" for name, value in entries.items()), end="\n\n")
EOF

mkdir -p out
log=out/compare-$(date -u +%Y-%m-%dT%H%M).txt
echo "before ($commit, $(git log -1 --format=%cd --date=short "$commit")) vs now ($(git rev-parse --short HEAD)), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs" | tee "$log"
for name in "${names[@]}"; do
  for side in before now; do
    if [[ $side == before ]]; then
      [[ -f $old/benchmarks/$name.py ]] || { echo "== $name: not at $commit" | tee -a "$log"; continue; }
      cmd=(env "PYTHONPATH=$old" "$py" "$old/benchmarks/$name.py")
      where=$old
    else
      cmd=("$py" "benchmarks/$name.py")
      where=$PWD
    fi
    {
      echo
      echo "== $name, $side, start $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
      (cd "$where" && "${cmd[@]}" 2>&1 | grep -v 'Kernel is running over TCP without encryption')
      echo "== $name, $side: exit ${PIPESTATUS[0]}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    } 2>&1 | tee -a "$log"
  done
done
echo "written to $log"
