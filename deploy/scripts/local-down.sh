#!/usr/bin/env bash
# Stops what local-up.sh started (the state directory is kept).
set -euo pipefail
cd "$(dirname "$0")/../.."
state="${CAPSTAN_STATE:-$PWD/.capstan}"
[ -f "$state/pids" ] || exit 0
while read -r pid; do
  kill "$pid" 2>/dev/null || true
done <"$state/pids"
rm -f "$state/pids"
