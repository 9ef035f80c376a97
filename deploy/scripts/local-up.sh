#!/usr/bin/env bash
# One command from a fresh Debian machine to a local cluster: installs what
# Capstan runs on (etcd, containerd, runc, the CNI plugins, busybox-static
# for the locally built images; protoc for the build), builds the release
# binaries and runs `capstan create cluster` (arguments are passed on, e.g.
# --name dev). Run as root. `deploy/scripts/local-down.sh` deletes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages=(protobuf-compiler libprotobuf-dev etcd-server etcd-client containerd runc containernetworking-plugins busybox-static iproute2 nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
cargo build --release --bins
exec target/release/capstan create cluster "$@"
