#!/usr/bin/env bash
# Profiles a release gatehouse under one benchmark scenario, on loopback, and writes the reports to OUT_DIR.
#
#   PROFILER=perf      perf record -g (frame pointers, cpu-clock sampling: works without hardware counters) on
#                      the proxy process for the measured window; reports self and inclusive (children) cost.
#   PROFILER=uprobes   exact call counts over the measured window (perf stat on uprobes): malloc, free, Swift
#                      runtime entry points (allocObject, retain/release, beginAccess, dynamicCast) and the relay's
#                      own functions, per echoed message (or handshake) and per relayed read (probe_counts.py).
#                      Every hit costs a trap: throughput under it means nothing.
#   PROFILER=callgrind valgrind --tool=callgrind, instrumented only for the measured window (callgrind_control).
#                      valgrind 3.19 (Debian 12) crashes on this binary even with --tool=none: use uprobes there.
#   SCENARIO=echo64    closed-loop echo, 64-byte messages, plain (scenario 1; SIZE=16384 for scenario 3)
#   SCENARIO=handshake TLS handshake + upgrade + close cycles (scenario 5)
#   SCENARIO=h2echo64  closed-loop echo, 64-byte messages, CONNS WebSockets on one HTTP/2 connection (scenario 7)
#
# Environment (defaults in brackets): PROFILER [perf]  SCENARIO [echo64]  CONNS [50; callgrind 10]
#   TLS_GROUPS [x25519,secp256r1] (what the client offers; "default" for NIOSSL's list with X25519MLKEM768)
#   HS_PARALLEL [20; callgrind 4]  WARMUP [2; callgrind 3]  DURATION [10; callgrind 4]  PROXY_THREADS [nproc]
#   GATEHOUSE_BIN, BENCH_BIN [this package's release build]  OUT_DIR [/tmp/gatehouse-profile.XXXXXX]  PORT_BASE [18280]
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROFILER="${PROFILER:-perf}"
SCENARIO="${SCENARIO:-echo64}"
if [[ "$PROFILER" == callgrind ]]; then
  : "${CONNS:=10}" "${HS_PARALLEL:=4}" "${WARMUP:=3}" "${DURATION:=4}"
fi
CONNS="${CONNS:-50}"
HS_PARALLEL="${HS_PARALLEL:-20}"
WARMUP="${WARMUP:-2}"
DURATION="${DURATION:-10}"
PROXY_THREADS="${PROXY_THREADS:-$(nproc)}"
PORT_BASE="${PORT_BASE:-18280}"
TLS_GROUPS="${TLS_GROUPS:-x25519,secp256r1}"
SIZE="${SIZE:-64}"
BIN_DIR="$(cd "$BENCH_DIR" && swift build -c release --show-bin-path 2>/dev/null || true)"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$BIN_DIR/gatehouse}"
BENCH_BIN="${BENCH_BIN:-$BIN_DIR/gatehouse-bench}"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/gatehouse-profile.XXXXXX)}"
HOST=127.0.0.1
PLAIN=$PORT_BASE; TLS=$((PORT_BASE + 1)); ECHO_PORT=$((PORT_BASE + 2))

LOG_TAG=profile
# shellcheck source=benchmarks/lib.sh
source "$BENCH_DIR/lib.sh"
LOG_DIR="$OUT_DIR"
case "$PROFILER" in perf | uprobes | callgrind) ;; *) die "PROFILER must be perf, uprobes or callgrind" ;; esac
case "$SCENARIO" in echo64 | handshake | h2echo64) ;; *) die "SCENARIO must be echo64, handshake or h2echo64" ;; esac
[[ -x "$GATEHOUSE_BIN" && -x "$BENCH_BIN" ]] || die "build gatehouse and gatehouse-bench (release) first"
if [[ "$PROFILER" == callgrind ]]; then
  command -v callgrind_control >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
else
  command -v perf >/dev/null || die "perf is not installed (apt-get install linux-perf)"
fi
mkdir -p "$OUT_DIR"

declare -A PIDS=()
PROBE_GROUPS=()
cleanup() {
  local status=$?
  for name in bench perf proxy echo; do [[ -n "${PIDS[$name]:-}" ]] && stop_pid "${PIDS[$name]}" 300; done
  for group in "${PROBE_GROUPS[@]}"; do perf probe -q -d "$group:*" 2>/dev/null || true; done
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" || true


write_certificate "$OUT_DIR"
cat >"$OUT_DIR/gatehouse.yaml" <<EOF
threads: $PROXY_THREADS
listeners:
  - name: plain
    bind: "$HOST:$PLAIN"
  - name: tls
    bind: "$HOST:$TLS"
    tls:
      certificates:
        - { cert: $OUT_DIR/cert.pem, key: $OUT_DIR/key.pem }
      min_version: "1.2"
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

"$GATEHOUSE_BIN" echo --bind "$HOST:$ECHO_PORT" --threads 1 >"$OUT_DIR/echo.log" 2>&1 &
PIDS[echo]=$!
wait_port "$ECHO_PORT" echo 600
if [[ "$PROFILER" == callgrind ]]; then
  # valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits; the symbol table is enough for function names.
  objcopy --strip-debug "$GATEHOUSE_BIN" "$OUT_DIR/gatehouse"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT_DIR/callgrind.out" \
    "$OUT_DIR/gatehouse" run --config "$OUT_DIR/gatehouse.yaml" >"$OUT_DIR/proxy.log" 2>&1 &
else
  "$GATEHOUSE_BIN" run --config "$OUT_DIR/gatehouse.yaml" >"$OUT_DIR/proxy.log" 2>&1 &
fi
PIDS[proxy]=$!
wait_port "$PLAIN" proxy 600

add_probes() {  # add_probes GROUP BINARY SYMBOL...: one uprobe per symbol (a missing one is skipped)
  local group="$1" binary="$2"; shift 2
  PROBE_GROUPS+=("$group")
  for symbol in "$@"; do
    perf probe -q -x "$binary" -a "$group:$(probe_name "$symbol")=$symbol" 2>>"$OUT_DIR/probes.log" || log "no probe for $symbol"
  done
}
probe_name() { local name="${1//[^A-Za-z0-9_]/_}"; echo "${name:0:60}"; }
if [[ "$PROFILER" == uprobes ]]; then
  PROXY_BIN="$(readlink -f "/proc/${PIDS[proxy]}/exe")"
  SWIFT_CORE="$(awk '/libswiftCore\.so/ {print $6; exit}' "/proc/${PIDS[proxy]}/maps")"
  LIBC="$(awk '/\/libc\.so\.6/ {print $6; exit}' "/proc/${PIDS[proxy]}/maps")"
  add_probes ghlibc "$LIBC" malloc free pthread_mutex_lock
  add_probes ghswift "$SWIFT_CORE" swift_allocObject swift_retain swift_release swift_beginAccess swift_dynamicCast \
    swift_conformsToProtocol swift_bridgeObjectRetain
  # The relay's own entry points, by mangled name (RelaySession.received, forward, flush, reportTraffic, ...).
  mapfile -t relay < <(nm "$PROXY_BIN" | awk '$2 ~ /^[tT]$/ {print $3}' \
    | grep -E '^[$]s9Gatehouse12RelaySessionC(8received_4from|7forward_2to|5flushyy|13reportTraffic|13sampleBacklog|12readComplete)' || true)
  add_probes ghrelay "$PROXY_BIN" "${relay[@]}"
  for symbol in "${relay[@]}"; do
    echo "$(echo "$symbol" | swift demangle --simplified --compact 2>/dev/null) = $(probe_name "$symbol")"
  done >"$OUT_DIR/probe-names.txt"
fi

if [[ "$SCENARIO" == echo64 ]]; then
  args=(echo --url "ws://$HOST:$PLAIN/echo" --connections "$CONNS" --size "$SIZE")
  ready_line="connections up"
elif [[ "$SCENARIO" == h2echo64 ]]; then
  args=(h2echo --url "wss://$HOST:$TLS/echo" --connections 1 --streams "$CONNS" --size 64)
  [[ "$TLS_GROUPS" == default ]] || args+=(--tls-groups "$TLS_GROUPS")
  ready_line="WebSocket streams"
else
  args=(handshake --url "wss://$HOST:$TLS/echo" --parallel "$HS_PARALLEL")
  [[ "$TLS_GROUPS" == default ]] || args+=(--tls-groups "$TLS_GROUPS")
  ready_line=""
fi
timeout -k 5 300 "$BENCH_BIN" "${args[@]}" --duration "$DURATION" --warmup "$WARMUP" --json \
  >"$OUT_DIR/bench.json" 2>"$OUT_DIR/bench.log" &
PIDS[bench]=$!
# The echo window starts once every connection is up (the bench says so); handshakes start at once.
if [[ -n "$ready_line" ]]; then
  for _ in $(seq 1 600); do grep -q "$ready_line" "$OUT_DIR/bench.log" && break; sleep 0.1; done
fi
sleep "$WARMUP"
# Profile a slightly shorter span than the bench's window, so that every sample falls inside it.
SPAN=$(python3 -c "print(max(0.5, $DURATION - 0.5))")
if [[ "$PROFILER" == callgrind ]]; then
  callgrind_control -i on "${PIDS[proxy]}" >/dev/null
  sleep "$SPAN"
  callgrind_control -i off "${PIDS[proxy]}" >/dev/null
elif [[ "$PROFILER" == uprobes ]]; then
  events=$(IFS=,; echo "${PROBE_GROUPS[*]/%/:*}")
  perf stat -x, -e "$events" -p "${PIDS[proxy]}" -o "$OUT_DIR/counts.csv" -- sleep "$SPAN" >/dev/null 2>&1 || true
else
  perf record -e cpu-clock -F 1999 -g -p "${PIDS[proxy]}" -o "$OUT_DIR/perf.data" -- sleep "$SPAN" \
    >"$OUT_DIR/perf-record.log" 2>&1 &
  PIDS[perf]=$!
  wait "${PIDS[perf]}" || true
  unset "PIDS[perf]"
fi
wait "${PIDS[bench]}" || log "bench exited with $? (see $OUT_DIR/bench.log)"
unset "PIDS[bench]"
# valgrind needs a while to write its output after the process exits.
stop_pid "${PIDS[proxy]}" 300
unset "PIDS[proxy]"
echo "span_seconds=$SPAN window_seconds=$DURATION" >"$OUT_DIR/span.txt"

demangle() { swift demangle --simplified 2>/dev/null || cat; }
if [[ "$PROFILER" == uprobes ]]; then
  python3 "$BENCH_DIR/probe_counts.py" "$OUT_DIR" "$SPAN" "$DURATION" >"$OUT_DIR/counts.txt"
elif [[ "$PROFILER" == callgrind ]]; then
  callgrind_annotate --inclusive=no "$OUT_DIR/callgrind.out" 2>/dev/null | demangle >"$OUT_DIR/self.txt"
  callgrind_annotate --inclusive=yes "$OUT_DIR/callgrind.out" 2>/dev/null | demangle >"$OUT_DIR/inclusive.txt"
else
  perf report -i "$OUT_DIR/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | demangle >"$OUT_DIR/self.txt"
  perf report -i "$OUT_DIR/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | demangle >"$OUT_DIR/inclusive.txt"
  perf report -i "$OUT_DIR/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null >"$OUT_DIR/dso.txt"
fi
log "done: $OUT_DIR ($([[ "$PROFILER" == uprobes ]] && echo counts.txt || echo self.txt, inclusive.txt), bench.json)"
