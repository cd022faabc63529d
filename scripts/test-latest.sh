#!/usr/bin/env bash
# The test command against the newest releases our ranges allow (ignores constraints/): builds or
# upgrades .venv-latest-2, -3 and -3-jsd and runs the same checks as scripts/test.sh.
# A failure here and a pass in scripts/test.sh means a dependency released something that breaks
# us: fix it, then record the new versions with scripts/refresh-constraints.sh.
#
#   bash scripts/test-latest.sh [pytest args]     HOSTS="3" for one host only
set -euo pipefail
cd "$(dirname "$0")/.."
LATEST=1 exec bash scripts/test.sh "$@"
