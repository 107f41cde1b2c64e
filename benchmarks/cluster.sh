#!/usr/bin/env bash
# Cluster mode's costs (issue 13), against a throw-away PostgreSQL on this machine's loopback:
#   handshake  one Gatehouse node; handshakes/s and CPU per handshake on a route whose limits are counted across the
#              fleet (`scope: cluster`: one lease, one PostgreSQL transaction, per handshake) against the same route
#              counted locally, interleaved, REPS times; PostgreSQL's CPU is reported apart.
#   fanout     three Gatehouse nodes; FANOUT_CONNS connections spread over them, each subscribed to one channel by the
#              backend's 101 (`Gatehouse-Channels`); BROADCASTS messages POSTed to one node's
#              /channels/bench/messages one after another: time from the POST to the last (and median) delivery.
# The backend and load generator are the Go tools of proxy-bound.sh (built here in GOPATH mode).
#
# Environment (defaults in brackets): REPS [3]  HS_DURATION [5]  HS_PARALLEL [20]  WARMUP [1]  PROXY_THREADS [2]
#   FANOUT_CONNS [10000]  BROADCASTS [5]  GATEHOUSE_BIN [../.build/release/gatehouse]  PORT_BASE [18400]
#   SCENARIOS [handshake fanout]  KEEP_WORK [0]  RESULTS_DIR [benchmarks/results]  RESULTS_NAME [cluster]  (results in results/RESULTS_NAME.jsonl)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"
RESULTS_NAME="${RESULTS_NAME:-cluster}"
REPS="${REPS:-3}"
HS_DURATION="${HS_DURATION:-5}"
HS_PARALLEL="${HS_PARALLEL:-20}"
WARMUP="${WARMUP:-1}"
PROXY_THREADS="${PROXY_THREADS:-2}"
FANOUT_CONNS="${FANOUT_CONNS:-10000}"
BROADCASTS="${BROADCASTS:-5}"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$ROOT_DIR/.build/release/gatehouse}"
PORT_BASE="${PORT_BASE:-18400}"
SCENARIOS="${SCENARIOS:-handshake fanout}"
HOST=127.0.0.1
PG_PORT=$PORT_BASE; ECHO_PORT=$((PORT_BASE + 1))
GOPATH_DEBIAN=/usr/share/gocode

LOG_TAG=cluster
WORK="$(mktemp -d /tmp/gatehouse-cluster-bench.XXXXXX)"
chmod 755 "$WORK"
LOG_DIR="$WORK"
declare -A PIDS=()
source "$BENCH_DIR/lib.sh"
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[[ -n "$PG_BIN" ]] || die "PostgreSQL server binaries are missing: apt-get install postgresql"
command -v go >/dev/null && [[ -d $GOPATH_DEBIAN/src/github.com/gorilla/websocket ]] \
  || die "Go and gorilla/websocket are missing: apt-get install golang-go golang-github-gorilla-websocket-dev"
[[ -x "$GATEHOUSE_BIN" ]] || die "no gatehouse binary at $GATEHOUSE_BIN: swift build -c release --product gatehouse"
id postgres >/dev/null 2>&1 || die "no 'postgres' user (the postgresql package creates it)"
# 10,000 subscribers: 20,000 sockets over the three nodes, 10,000 each in the backend and the load generator.
hard="$(ulimit -Hn)"
if [[ "$hard" == unlimited || "$hard" -gt 65536 ]]; then ulimit -n 65536; else ulimit -n "$hard"; fi
(( $(ulimit -n) > FANOUT_CONNS + 100 )) || die "open-file limit $(ulimit -n) is too low for FANOUT_CONNS=$FANOUT_CONNS"

stop_postgres() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
trap 'stop_postgres; _stop_all_and_exit' EXIT
trap 'exit 130' INT TERM

log "building the Go echo backend and load generator"
mkdir -p "$WORK/bin"
(cd "$BENCH_DIR" && export GO111MODULE=off GOPATH=$GOPATH_DEBIAN GOFLAGS= &&
  go build -o "$WORK/bin/echo" ./go/echo && go build -o "$WORK/bin/load" ./go/load) >&2
LOAD="$WORK/bin/load"

log "starting a throw-away PostgreSQL on $HOST:$PG_PORT"
mkdir -p "$WORK/pg/sock"
chown -R postgres "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -E UTF8 --locale=C.UTF-8 -A trust >"$WORK/initdb.log" 2>&1
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-p $PG_PORT -k $WORK/pg/sock -c listen_addresses=$HOST -c max_connections=200" start >/dev/null
runuser -u postgres -- "$PG_BIN/psql" -h "$WORK/pg/sock" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE gatehouse LOGIN PASSWORD 'bench'" -c "CREATE DATABASE gatehouse OWNER gatehouse"
export GATEHOUSE_PG_URL="postgres://gatehouse:bench@$HOST:$PG_PORT/gatehouse?sslmode=disable"
postgres_pids() { pgrep -d, -u postgres -f "postgres.*$WORK/pg" || true; }

"$WORK/bin/echo" -addr "$HOST:$ECHO_PORT" >"$LOG_DIR/echo.log" 2>&1 &
PIDS[echo]=$!
wait_port "$ECHO_PORT" echo

# node_config NAME PORT ADMIN_PORT
node_config() {
  cat <<YAML
threads: $PROXY_THREADS
listeners:
  - name: plain
    bind: "$HOST:$2"
backends:
  - name: app
    servers: ["$HOST:$ECHO_PORT"]
routes:
  - name: local
    path: "/local"
    backend: app
    origins: ["*"]
    limits: { max_connections: 1000000, keepalive_interval: 0 }
  - name: cluster
    path: "/cluster"
    backend: app
    origins: ["*"]
    limits: { max_connections: 1000000, keepalive_interval: 0, scope: cluster }
  - name: chat
    path: "/chat"
    backend: app
    origins: ["*"]
    limits: { keepalive_interval: 0 }
defaults:
  limits: { max_pending_connections: 100000, max_pending_connections_per_ip: 100000 }
admin:
  bind: "$HOST:$3"
log:
  level: warning
  access_log: false
cluster:
  node: "$1"
  postgres:
    url_env: GATEHOUSE_PG_URL
  heartbeat: 2s
YAML
}

# start_node NAME INDEX: listener PORT_BASE+10+INDEX, admin PORT_BASE+20+INDEX.
start_node() {
  local name="$1" index="$2"
  node_config "$name" $((PORT_BASE + 10 + index)) $((PORT_BASE + 20 + index)) >"$WORK/$name.yaml"
  "$GATEHOUSE_BIN" run --config "$WORK/$name.yaml" >"$LOG_DIR/$name.log" 2>&1 &
  PIDS[$name]=$!
  wait_port $((PORT_BASE + 10 + index)) "$name"
  for _ in $(seq 1 100); do
    curl -s "http://$HOST:$((PORT_BASE + 20 + index))/metrics" | grep -q '^gatehouse_cluster_store_up 1' && return 0
    sleep 0.1
  done
  die "$name did not reach the store; see $LOG_DIR/$name.log"
}

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/$RESULTS_NAME.jsonl"
: >"$OUT"

if want handshake; then
  start_node n1 1
  for rep in $(seq 1 "$REPS"); do
    for route in local cluster; do
      log "handshake $route rep $rep"
      "$LOAD" -mode handshake -url "ws://$HOST:$((PORT_BASE + 11))/$route" -duration "$HS_DURATION" -warmup "$WARMUP" \
        -parallel "$HS_PARALLEL" -watch "${PIDS[n1]}" -watch-other "$(postgres_pids)" 2>>"$LOG_DIR/load.log" \
        | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["scenario"]="handshake_'"$route"'"; r["rep"]='"$rep"'; print(json.dumps(r))' >>"$OUT"
    done
  done
  stop_pid "${PIDS[n1]}"; unset 'PIDS[n1]'
fi

if want fanout; then
  for i in 1 2 3; do start_node "f$i" "$i"; done
  urls="ws://$HOST:$((PORT_BASE + 11))/chat?channels=bench,ws://$HOST:$((PORT_BASE + 12))/chat?channels=bench,ws://$HOST:$((PORT_BASE + 13))/chat?channels=bench"
  log "fan-out to $FANOUT_CONNS subscribers on 3 nodes"
  "$LOAD" -mode fanout -urls "$urls" -conns "$FANOUT_CONNS" -concurrency 200 -settle 2 -broadcasts "$BROADCASTS" \
    -publish "http://$HOST:$((PORT_BASE + 21))/channels/bench/messages" 2>>"$LOG_DIR/load.log" \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["scenario"]="fanout"; print(json.dumps(r))' >>"$OUT"
fi

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(values): return statistics.median(values) if values else float("nan")
hs = {}
for r in rows:
    if r["scenario"].startswith("handshake_"):
        route = r["scenario"].split("_", 1)[1]
        n = r.get("handshakes") or 0
        hs.setdefault(route, []).append((r["handshakesPerSecond"], 1e6 * (r.get("watchedCPUSeconds") or 0) / max(n, 1),
                                         1e6 * (r.get("otherCPUSeconds") or 0) / max(n, 1), r["latencyMicros"]["p99"], r["errors"]))
if hs:
    print("| route limits | handshakes/s | Gatehouse CPU µs/handshake | PostgreSQL CPU µs/handshake | p99 µs | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for route in ("local", "cluster"):
        v = hs.get(route, [])
        print(f"| {route} | {med([x[0] for x in v]):.0f} | {med([x[1] for x in v]):.0f} | {med([x[2] for x in v]):.0f} | {med([x[3] for x in v]):.0f} | {sum(x[4] for x in v)} |")
for r in rows:
    if r["scenario"] == "fanout":
        print()
        print(f"fan-out: {r.get('opened')}/{r.get('connections')} subscribers on 3 nodes; per broadcast, ms to last delivery "
              f"{r.get('fanoutLastMillis')} (median {med(r.get('fanoutLastMillis', [])):.1f}), ms to median delivery "
              f"{r.get('fanoutMedianMillis')}, POST answered after ms {r.get('publishMillis')}; errors {r.get('errors')}")
PY
