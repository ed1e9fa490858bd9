#!/usr/bin/env bash
# Starts a local 3-master Redis Cluster (no replicas) on 127.0.0.1 for tests and benchmarks of the
# Redis Cluster bus. Debian's redis-server (>= 7.0, for sharded pub/sub) is installed if missing.
# Each node has its own directory under .services/redis-cluster/<port>. Idempotent: `up` on a
# healthy cluster only prints the env line.
#
#   scripts/redis-cluster.sh up      install if missing, start the nodes, create the cluster, print env
#   scripts/redis-cluster.sh down    stop the nodes and delete their state
#   scripts/redis-cluster.sh env     print the REDIS_CLUSTER_NODES export
#
# Ports: REDIS_CLUSTER_PORTS (default "7001 7002 7003"); each node also uses port+10000 for the
# cluster bus, so 17001-17003 must be free as well.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SERVICES_DIR:-$ROOT/.services}/redis-cluster"
read -r -a PORTS <<<"${REDIS_CLUSTER_PORTS:-7001 7002 7003}"
HOST=127.0.0.1

log() { echo "[redis-cluster] $*" >&2; }

nodes_csv() {
  local out=() port
  for port in "${PORTS[@]}"; do out+=("$HOST:$port"); done
  (IFS=,; echo "${out[*]}")
}

print_env() { echo "export REDIS_CLUSTER_NODES=$(nodes_csv)"; }

ensure_packages() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing redis-server (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  local version
  version="$(redis-server --version | sed -n 's/.*v=\([0-9]*\)\..*/\1/p')"
  if [[ -z "$version" || "$version" -lt 7 ]]; then
    log "redis-server >= 7.0 is needed for sharded pub/sub (SSUBSCRIBE); found: $(redis-server --version)"
    exit 1
  fi
}

answers() { [[ "$(redis-cli -h "$HOST" -p "$1" ping 2>/dev/null)" == "PONG" ]]; }

cluster_ok() { redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

start_node() {
  local port="$1" dir="$STATE/$1"
  if answers "$port"; then
    if ! redis-cli -h "$HOST" -p "$port" info cluster 2>/dev/null | grep -q '^cluster_enabled:1'; then
      log "port $port answers but is not a cluster node: choose other ports with REDIS_CLUSTER_PORTS"
      exit 1
    fi
    return
  fi
  mkdir -p "$dir"
  redis-server --bind "$HOST" --port "$port" --daemonize yes \
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000 \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
    --save '' --appendonly no --maxclients 10000 >/dev/null
  for _ in $(seq 1 50); do answers "$port" && return; sleep 0.1; done
  log "node $port did not start"; tail -20 "$dir/redis.log" >&2; exit 1
}

wait_cluster_ok() {
  for _ in $(seq 1 100); do cluster_ok && return 0; sleep 0.1; done
  return 1
}

up() {
  ensure_packages
  if cluster_ok; then
    log "cluster already up on $(nodes_csv)"
    print_env
    return
  fi
  local port
  for port in "${PORTS[@]}"; do start_node "$port"; done
  # A node that already knows other nodes (restarted from its nodes.conf) rejoins by itself;
  # only fresh, empty nodes need `--cluster create`.
  if ! wait_cluster_ok; then
    local known
    known="$(redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')"
    if [[ "$known" == "1" ]]; then
      log "creating cluster on $(nodes_csv)"
      local addresses=()
      for port in "${PORTS[@]}"; do addresses+=("$HOST:$port"); done
      redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes >"$STATE/create.log" 2>&1 || {
        log "cluster create failed:"; cat "$STATE/create.log" >&2; exit 1; }
    fi
    wait_cluster_ok || { log "cluster did not reach state ok (stale nodes? run: $0 down)"; exit 1; }
  fi
  log "cluster up on $(nodes_csv)"
  print_env
}

down() {
  local port pidfile pid
  for port in "${PORTS[@]}"; do
    pidfile="$STATE/$port/redis.pid"
    if [[ -f "$pidfile" ]]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "${STATE:?}/$port"
  done
  rm -f "$STATE/create.log"
  log "stopped"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
