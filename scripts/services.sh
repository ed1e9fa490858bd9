#!/usr/bin/env bash
# Installs (Debian packages) and starts MariaDB and Redis on 127.0.0.1 for tests and benchmarks.
# No systemd is assumed: the daemons are started directly, as root, with state under .services/.
# Idempotent: running `up` when both answer does nothing but print the connection URLs.
#
#   scripts/services.sh up      install if missing, start, create database + user, print env
#   scripts/services.sh down    stop both
#   scripts/services.sh env     print the MYSQL_URL / REDIS_URL exports
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SERVICES_DIR:-$ROOT/.services}"
MYSQL_PORT="${SERVICES_MYSQL_PORT:-3306}"
REDIS_PORT="${SERVICES_REDIS_PORT:-6379}"
DB_NAME="longpoll"
DB_USER="gateway"
DB_PASS="gateway-dev-password"
SOCK="$STATE/mysql/mysqld.sock"

log() { echo "[services] $*" >&2; }

print_env() {
  echo "export MYSQL_URL=mysql://$DB_USER:$DB_PASS@127.0.0.1:$MYSQL_PORT/$DB_NAME"
  echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
}

ensure_packages() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

mysql_up() {
  if mariadb-admin --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -u"$DB_USER" -p"$DB_PASS" ping >/dev/null 2>&1; then
    log "mariadb already answering on 127.0.0.1:$MYSQL_PORT"
    return
  fi
  mkdir -p "$STATE/mysql"
  if [[ ! -d "$STATE/mysql/data/mysql" ]]; then
    log "initialising mariadb data dir"
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$STATE/mysql/install.log" 2>&1
  fi
  log "starting mariadbd on 127.0.0.1:$MYSQL_PORT"
  setsid mariadbd --no-defaults --user=root --datadir="$STATE/mysql/data" --socket="$SOCK" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$STATE/mysql/mysqld.pid" --log-error="$STATE/mysql/error.log" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
    --max-connections=2000 --innodb-flush-log-at-trx-commit=2 </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1 || {
    log "mariadb did not start; last log lines:"; tail -20 "$STATE/mysql/error.log" >&2; exit 1; }
  # Tests create one database per suite, so the local test user may create and drop databases.
  mariadb --socket="$SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
}

redis_up() {
  if [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; then
    log "redis already answering on 127.0.0.1:$REDIS_PORT"
    return
  fi
  mkdir -p "$STATE/redis"
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --pidfile "$STATE/redis/redis.pid" --logfile "$STATE/redis/redis.log" --dir "$STATE/redis" \
    --save '' --appendonly no --maxclients 10000 >/dev/null
  for _ in $(seq 1 50); do
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]] && return
    sleep 0.1
  done
  log "redis did not start"; tail -20 "$STATE/redis/redis.log" >&2; exit 1
}

stop_pidfile() {
  local pidfile="$1"
  [[ -f "$pidfile" ]] || return 0
  local pid; pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

case "${1:-up}" in
  up) ensure_packages; mysql_up; redis_up; print_env ;;
  down) stop_pidfile "$STATE/mysql/mysqld.pid"; stop_pidfile "$STATE/redis/redis.pid"; log "stopped" ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
