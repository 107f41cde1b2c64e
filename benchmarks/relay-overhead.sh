#!/usr/bin/env bash
# Measures what one Gatehouse build costs against another on the same relay work: by default the frame-aware relay
# (this checkout) against the pure byte relay of commit bd54ab4. Both run side by side with the same
# configuration in front of one echo backend; scenario 1 (64 B messages) and scenario 3 (16 KiB), plain, 50
# connections, interleaved: every repetition runs each scenario on both builds, in an order rotated per repetition.
# SCENARIOS adds scenario 5 (TLS handshake cycles, X25519 as in compare.sh) and scenario 7 (64 B messages on
# H2_STREAMS WebSockets over one HTTP/2 connection, RFC 8441); both then also get a TLS listener (ALPN h2, http/1.1).
#
# The baseline binary is built separately (its own worktree and .build; a cold release build takes ~13 minutes):
#   git worktree add /work/bytes-wt bd54ab4 && (cd /work/bytes-wt && swift build -c release --product gatehouse)
#   BASELINE_BIN=/work/bytes-wt/.build/release/gatehouse benchmarks/relay-overhead.sh
#
# Environment (defaults in brackets):
#   BASELINE_BIN (required)  CANDIDATE_BIN [this package's release gatehouse]
#   BASELINE_LABEL [byte relay bd54ab4]  CANDIDATE_LABEL [frame relay HEAD]
#   REPS [5]  DURATION [10] (64 B)  LARGE_DURATION [5] (16 KiB)  WARMUP [1]  CONNS [50]
#   PROXY_THREADS [nproc]  ECHO_THREADS [1]  CLIENT_THREADS [1]  PORT_BASE [18180]  BENCH_BIN
#   SCENARIOS [s1_plain64 s3_plain16k] (any of s1_plain64 s3_plain16k s5_handshake_tls s7_h2_64, in this order)
#   TLS_GROUPS [x25519,secp256r1]  HS_PARALLEL [20]  HS_DURATION [5]  H2_STREAMS [50]
#   RESULTS_DIR [benchmarks/results]  RESULTS_NAME [relay-overhead] (writes NAME.json and NAME.md)  KEEP_WORK [0]
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"
REPS="${REPS:-5}"
DURATION="${DURATION:-10}"
LARGE_DURATION="${LARGE_DURATION:-5}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
CORES="$(nproc)"
PROXY_THREADS="${PROXY_THREADS:-$CORES}"
ECHO_THREADS="${ECHO_THREADS:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"
PORT_BASE="${PORT_BASE:-18180}"
KEEP_WORK="${KEEP_WORK:-0}"
SCENARIOS="${SCENARIOS:-s1_plain64 s3_plain16k}"
TLS_GROUPS="${TLS_GROUPS:-x25519,secp256r1}"
HS_PARALLEL="${HS_PARALLEL:-20}"
HS_DURATION="${HS_DURATION:-5}"
H2_STREAMS="${H2_STREAMS:-50}"
RESULTS_NAME="${RESULTS_NAME:-relay-overhead}"
BASELINE_LABEL="${BASELINE_LABEL:-byte relay bd54ab4}"
CANDIDATE_COMMIT="$(git -C "$ROOT_DIR" log -1 --format=%h -- Sources Package.swift 2>/dev/null || echo HEAD)"
git -C "$ROOT_DIR" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || CANDIDATE_COMMIT+="+uncommitted"
CANDIDATE_LABEL="${CANDIDATE_LABEL:-frame relay $CANDIDATE_COMMIT}"
HOST=127.0.0.1
ECHO_PORT=$((PORT_BASE + 20))
declare -A PORT=([baseline]=$PORT_BASE [candidate]=$((PORT_BASE + 1)))
declare -A TLS_PORT=([baseline]=$((PORT_BASE + 10)) [candidate]=$((PORT_BASE + 11)))

LOG_TAG=overhead
# shellcheck source=benchmarks/lib.sh
source "$BENCH_DIR/lib.sh"

[[ -n "${BASELINE_BIN:-}" && -x "${BASELINE_BIN:-}" ]] || die "set BASELINE_BIN to the baseline gatehouse binary"
NEED_TLS=0
for scenario in $SCENARIOS; do
  case "$scenario" in
    s1_plain64 | s3_plain16k) ;;
    s5_handshake_tls | s7_h2_64) NEED_TLS=1 ;;
    *) die "unknown scenario $scenario (s1_plain64, s3_plain16k, s5_handshake_tls, s7_h2_64)" ;;
  esac
done
BIN_DIR="$(cd "$BENCH_DIR" && swift build -c release --show-bin-path 2>/dev/null || true)"
CANDIDATE_BIN="${CANDIDATE_BIN:-$BIN_DIR/gatehouse}"
BENCH_BIN="${BENCH_BIN:-$BIN_DIR/gatehouse-bench}"
[[ -x "$CANDIDATE_BIN" ]] || die "no candidate gatehouse at $CANDIDATE_BIN (build it: swift build -c release --product gatehouse)"
[[ -x "$BENCH_BIN" ]] || die "no gatehouse-bench at $BENCH_BIN"
declare -A BIN=([baseline]=$BASELINE_BIN [candidate]=$CANDIDATE_BIN)

WORK="$(mktemp -d /tmp/gatehouse-overhead.XXXXXX)"
LOG_DIR="$WORK"
declare -A PIDS=()
stop_all_on_exit

ulimit -n "$(ulimit -Hn)" || true
[[ $(ulimit -n) -ge $((CONNS * 4 + 1000)) ]] || die "open-file limit $(ulimit -n) is too low"
PORTS=($ECHO_PORT "${PORT[@]}")
if [[ $NEED_TLS == 1 ]]; then PORTS+=("${TLS_PORT[@]}"); fi
for port in "${PORTS[@]}"; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set PORT_BASE"; fi
done


# Same configuration for both: one plain listener, default limits (no limits set), no access log, no admin; with
# scenario 5 or 7 also a TLS listener like compare.sh's (one ECDSA P-256 certificate, default ALPN h2, http/1.1).
if [[ $NEED_TLS == 1 ]]; then
  write_certificate "$WORK"
fi
for build in baseline candidate; do
  TLS_LISTENER=""
  if [[ $NEED_TLS == 1 ]]; then TLS_LISTENER="
  - name: tls
    bind: \"$HOST:${TLS_PORT[$build]}\"
    tls:
      certificates:
        - { cert: $WORK/cert.pem, key: $WORK/key.pem }
      min_version: \"1.2\""; fi
  cat >"$WORK/$build.yaml" <<EOF
threads: $PROXY_THREADS
listeners:
  - name: plain
    bind: "$HOST:${PORT[$build]}"$TLS_LISTENER
backends:
  - name: echo
    servers: ["$HOST:$ECHO_PORT"]
routes:
  - name: echo
    path: "/echo"
    backend: echo
    origins: ["*"]
log: { level: warning, access_log: false }
EOF
done

"$CANDIDATE_BIN" echo --bind "$HOST:$ECHO_PORT" --threads "$ECHO_THREADS" >>"$WORK/echo.log" 2>&1 &
PIDS[echo]=$!
wait_port "$ECHO_PORT" echo
for build in baseline candidate; do
  "${BIN[$build]}" run --config "$WORK/$build.yaml" >>"$WORK/$build.log" 2>&1 &
  PIDS[$build]=$!
  wait_port "${PORT[$build]}" "$build"
  if [[ $NEED_TLS == 1 ]]; then wait_port "${TLS_PORT[$build]}" "$build"; fi
done
log "up: echo=${PIDS[echo]} baseline=${PIDS[baseline]} ($BASELINE_BIN) candidate=${PIDS[candidate]} ($CANDIDATE_BIN)"

RAW="$WORK/raw.jsonl"
: >"$RAW"
run_case() {  # run_case SCENARIO BUILD REP
  local scenario="$1" build="$2" rep="$3" status=0
  local out="$WORK/$scenario.$build.$rep.json" plain="ws://$HOST:${PORT[$build]}/echo" tls="wss://$HOST:${TLS_PORT[$build]}/echo"
  local args=()
  case "$scenario" in
    s1_plain64) args=(echo --url "$plain" --connections "$CONNS" --size 64 --duration "$DURATION" --warmup "$WARMUP") ;;
    s3_plain16k) args=(echo --url "$plain" --connections "$CONNS" --size 16384 --duration "$LARGE_DURATION" --warmup "$WARMUP") ;;
    s5_handshake_tls) args=(handshake --url "$tls" --tls-groups "$TLS_GROUPS" --parallel "$HS_PARALLEL"
                             --duration "$HS_DURATION" --warmup 1) ;;
    s7_h2_64) args=(h2echo --url "$tls" --tls-groups "$TLS_GROUPS" --connections 1 --streams "$H2_STREAMS" --size 64
                     --duration "$DURATION" --warmup "$WARMUP") ;;
  esac
  log "rep $rep  $scenario  $build"
  timeout -k 5 300 "$BENCH_BIN" "${args[@]}" --threads "$CLIENT_THREADS" --watch-pid "${PIDS[$build]}" --json \
    >"$out" 2>>"$WORK/bench.log" || status=$?
  [[ $status == 0 ]] || log "  exit $status (see $WORK/bench.log)"
  python3 - "$scenario" "$build" "$rep" "$out" "$status" >>"$RAW" <<'EOF'
import json, sys
scenario, build, rep, path, status = sys.argv[1:6]
text = open(path).read().strip()
try:
    result = json.loads(text.splitlines()[-1]) if text else None
except ValueError:
    result = None
print(json.dumps({"scenario": scenario, "build": build, "rep": int(rep), "exit": int(status), "result": result}))
EOF
  sleep 0.3
}

START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((rep = 1; rep <= REPS; rep++)); do
  if ((rep % 2)); then order=(baseline candidate); else order=(candidate baseline); fi
  for scenario in $SCENARIOS; do
    for build in "${order[@]}"; do run_case "$scenario" "$build" "$rep"; done
  done
done
for name in "${!PIDS[@]}"; do
  kill -0 "${PIDS[$name]}" 2>/dev/null || log "warning: $name (pid ${PIDS[$name]}) is no longer running"
done

mkdir -p "$RESULTS_DIR"
export BASELINE_LABEL CANDIDATE_LABEL REPS DURATION LARGE_DURATION WARMUP CONNS PROXY_THREADS CORES LOAD_START
export SCENARIOS TLS_GROUPS HS_PARALLEL HS_DURATION H2_STREAMS RESULTS_NAME
export LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)" SECONDS_TAKEN=$(( $(date +%s) - START ))
python3 "$BENCH_DIR/overhead_summary.py" "$RAW" "$RESULTS_DIR/$RESULTS_NAME.json" "$RESULTS_DIR/$RESULTS_NAME.md"
