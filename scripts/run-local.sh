#!/usr/bin/env bash
# Runs etcd-autobackup on embedded defaults: a local etcd and Redis on loopback (state in .run/),
# the full service (webhooks, etcd watch, queue, worker, dashboard), backups into ./backups.
# Env: ETCD_PORT (2379), REDIS_PORT (6379), LISTEN (127.0.0.1:8080), DEBOUNCE (1m).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "run-local: building" >&2
npm run --silent build

state="$PWD/.run"
mkdir -p "$state" backups

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
pick() { if port_free "$1"; then echo "$1"; else free_port; fi; }

etcd_port=$(pick "${ETCD_PORT:-2379}")
peer_port=$(free_port)
redis_port=$(pick "${REDIS_PORT:-6379}")
listen="${LISTEN:-127.0.0.1:8080}"
port_free "${listen##*:}" || listen="127.0.0.1:$(free_port)"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

etcd --name local --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "local=http://127.0.0.1:$peer_port" --log-level warn >"$state/etcd.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --appendonly yes --save '' >"$state/redis.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$etcd_port" endpoint health >/dev/null 2>&1 \
    && redis-cli -p "$redis_port" ping >/dev/null 2>&1; then break; fi
  sleep 0.2
done

# A dashboard password made once and kept in .run/, passed by env so it never shows in `ps`.
[ -s "$state/dashboard-password" ] || (umask 077; node -e "console.log(require('crypto').randomBytes(12).toString('base64url'))" >"$state/dashboard-password")
export ETCD_AUTOBACKUP_DASHBOARD_USER=admin
ETCD_AUTOBACKUP_DASHBOARD_PASSWORD=$(cat "$state/dashboard-password")
export ETCD_AUTOBACKUP_DASHBOARD_PASSWORD
export ETCD_AUTOBACKUP_ENDPOINTS="http://127.0.0.1:$etcd_port"
export ETCD_AUTOBACKUP_REDIS_URL="redis://127.0.0.1:$redis_port"
export ETCD_AUTOBACKUP_STORE="$PWD/backups"
export ETCD_AUTOBACKUP_LISTEN="$listen"
export ETCD_AUTOBACKUP_DEBOUNCE_WINDOW="${DEBOUNCE:-1m}"
export ETCD_AUTOBACKUP_WATCH=true
# The delta log (docs/delta-log.md): every change stored within 10s, for point-in-time restore.
export ETCD_AUTOBACKUP_DELTA=true
export ETCD_AUTOBACKUP_LOG_FORMAT=pretty

cli="node $PWD/dist/cli/main.js"
cat <<EOT

  etcd        http://127.0.0.1:$etcd_port   (data in .run/etcd, log .run/etcd.log)
  redis       redis://127.0.0.1:$redis_port (log .run/redis.log)
  backups     $PWD/backups
  dashboard   http://${listen/0.0.0.0/127.0.0.1}/queues   user admin, password $(cat "$state/dashboard-password")

  Make a change and watch a snapshot follow within ${DEBOUNCE:-1m}:
    ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:$etcd_port put /registry/configmaps/default/demo hello
  In another terminal (same env: source the lines above or pass --store $PWD/backups):
    $cli list --store $PWD/backups
    $cli verify latest --store $PWD/backups
    $cli restore latest --store $PWD/backups --data-dir /tmp/etcd-restored
  Ctrl-C stops everything.

EOT
$cli serve &
pids+=($!)
wait "${pids[-1]}"
