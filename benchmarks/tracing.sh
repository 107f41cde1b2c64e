#!/usr/bin/env bash
# Tracing's cost (issue 16): plain ws handshakes (upgrade, then close) through one Gatehouse node, tracing off and
# on (OTLP/HTTP JSON to a local stdlib receiver, the one the tests use, spans batched every 100 ms), interleaved,
# REPS times. Reports handshakes/s and the node's CPU per handshake; each handshake makes two spans when on.
#
# Environment: REPS [3]  HS_DURATION [5]  HS_PARALLEL [20]  WARMUP [1]  PROXY_THREADS [2]  PORT_BASE [18500]
#   GATEHOUSE_BIN [../.build/release/gatehouse]  KEEP_WORK [0]
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
REPS="${REPS:-3}"; HS_DURATION="${HS_DURATION:-5}"; HS_PARALLEL="${HS_PARALLEL:-20}"; WARMUP="${WARMUP:-1}"
PROXY_THREADS="${PROXY_THREADS:-2}"; PORT_BASE="${PORT_BASE:-18500}"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$ROOT_DIR/.build/release/gatehouse}"
HOST=127.0.0.1; ECHO_PORT=$((PORT_BASE + 1)); PROXY_PORT=$((PORT_BASE + 2)); GOPATH_DEBIAN=/usr/share/gocode
LOG_TAG=tracing
WORK="$(mktemp -d /tmp/gatehouse-tracing-bench.XXXXXX)"
LOG_DIR="$WORK"
declare -A PIDS=()
source "$BENCH_DIR/lib.sh"
stop_all_on_exit
[[ -x "$GATEHOUSE_BIN" ]] || die "no gatehouse binary at $GATEHOUSE_BIN"

(cd "$BENCH_DIR" && export GO111MODULE=off GOPATH=$GOPATH_DEBIAN GOFLAGS= &&
  go build -o "$WORK/echo" ./go/echo && go build -o "$WORK/load" ./go/load) >&2
"$WORK/echo" -addr "$HOST:$ECHO_PORT" >"$LOG_DIR/echo.log" 2>&1 &
PIDS[echo]=$!
wait_port "$ECHO_PORT" echo
python3 -u "$ROOT_DIR/Tests/GatehouseTests/Peers/otlp_receiver.py" >"$WORK/receiver.log" 2>&1 &
PIDS[receiver]=$!
for _ in $(seq 1 50); do grep -q '^listening ' "$WORK/receiver.log" 2>/dev/null && break; sleep 0.1; done
RECEIVER_PORT="$(awk '/^listening /{print $2; exit}' "$WORK/receiver.log")"
[[ -n "$RECEIVER_PORT" ]] || die "the OTLP receiver did not start"

cat >"$WORK/proxy.yaml" <<YAML
threads: $PROXY_THREADS
listeners: [{name: plain, bind: "$HOST:$PROXY_PORT"}]
backends: [{name: app, servers: ["$HOST:$ECHO_PORT"]}]
routes: [{name: r, path: "/", backend: app, origins: ["*"], limits: {keepalive_interval: 0}}]
log: {level: warning, access_log: false}
YAML

# run_mode MODE REP: starts the node with tracing MODE (off|on), measures, stops it.
run_mode() {
  local mode="$1" rep="$2"
  if [[ "$mode" == on ]]; then
    OTEL_EXPORTER_OTLP_ENDPOINT="http://$HOST:$RECEIVER_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_BSP_SCHEDULE_DELAY=100 \
      "$GATEHOUSE_BIN" run --config "$WORK/proxy.yaml" >"$LOG_DIR/gatehouse-$mode.log" 2>&1 &
  else
    "$GATEHOUSE_BIN" run --config "$WORK/proxy.yaml" >"$LOG_DIR/gatehouse-$mode.log" 2>&1 &
  fi
  PIDS[gatehouse]=$!
  wait_port "$PROXY_PORT" gatehouse
  "$WORK/load" -mode handshake -url "ws://$HOST:$PROXY_PORT/" -duration "$HS_DURATION" -warmup "$WARMUP" \
    -parallel "$HS_PARALLEL" -watch "${PIDS[gatehouse]}" 2>>"$LOG_DIR/load.log" \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(json.dumps({"mode": "'"$mode"'", "rep": '"$rep"', "hs": r["handshakesPerSecond"], "cpu_us": 1e6*r["watchedCPUSeconds"]/max(1,r["handshakes"]), "errors": r["errors"]}))'
  stop_pid "${PIDS[gatehouse]}"; unset 'PIDS[gatehouse]'
}

for rep in $(seq 1 "$REPS"); do
  for mode in off on; do log "rep $rep tracing $mode"; run_mode "$mode" "$rep" >>"$WORK/results.jsonl"; done
done
spans="$(grep -c '^SPAN ' "$WORK/receiver.log" || true)"
python3 - "$WORK/results.jsonl" "$spans" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| tracing | handshakes/s | Gatehouse CPU µs/handshake | errors |")
print("|---|---:|---:|---:|")
for mode in ("off", "on"):
    v = [r for r in rows if r["mode"] == mode]
    print(f"| {mode} | {statistics.median(r['hs'] for r in v):.0f} | {statistics.median(r['cpu_us'] for r in v):.0f} | {sum(r['errors'] for r in v)} |")
print(f"\nspans received while on: {sys.argv[2]}")
PY
