#!/usr/bin/env bash
# Deletes the cluster local-up.sh created: every process, mount, network
# namespace, cgroup, link and state file (arguments are passed on, e.g.
# --name dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec target/release/capstan delete cluster "$@"
