#!/usr/bin/env bash
# Brings up what Capstan has so far on this machine: etcd, the apiserver, the
# scheduler and the controller-manager on 127.0.0.1, with a fresh cluster PKI and an admin
# kubeconfig. Installs
# etcd from Debian if it is missing. Stop with deploy/scripts/local-down.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
state="${CAPSTAN_STATE:-$PWD/.capstan}"
port="${CAPSTAN_PORT:-6443}"
etcd_port="${CAPSTAN_ETCD_PORT:-2379}"

if ! command -v etcd >/dev/null || ! command -v protoc >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq etcd-server etcd-client protobuf-compiler libprotobuf-dev
fi
cargo build --release --bins

mkdir -p "$state"
if [ -f "$state/pids" ]; then
  "$(dirname "$0")/local-down.sh" || true
fi
target/release/capstan pki init --dir "$state/pki" --server "https://127.0.0.1:$port" >/dev/null

etcd --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --log-level warn >"$state/etcd.log" 2>&1 &
echo $! >"$state/pids"

target/release/capstan-apiserver --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --secure-port "$port" \
  --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
  --client-ca-file "$state/pki/ca.crt" \
  --kubelet-client-certificate "$state/pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$state/pki/apiserver-kubelet-client.key" >"$state/apiserver.log" 2>&1 &
echo $! >>"$state/pids"

target/release/capstan-scheduler --kubeconfig "$state/pki/admin.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "${CAPSTAN_SCHEDULER_PORT:-10259}" >"$state/scheduler.log" 2>&1 &
echo $! >>"$state/pids"

target/release/capstan-controller-manager --kubeconfig "$state/pki/admin.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "${CAPSTAN_CONTROLLER_MANAGER_PORT:-10257}" >"$state/controller-manager.log" 2>&1 &
echo $! >>"$state/pids"

export KUBECONFIG="$state/pki/admin.kubeconfig"
for _ in $(seq 1 100); do
  if kubectl get --raw /readyz >/dev/null 2>&1; then
    echo "Capstan is up. Use it with:"
    echo "  export KUBECONFIG=$KUBECONFIG"
    exit 0
  fi
  sleep 0.2
done
echo "the apiserver did not become ready; see $state/apiserver.log" >&2
exit 1
