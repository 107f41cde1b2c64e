#!/usr/bin/env bash
# Compares Gatehouse with nginx and HAProxy as WebSocket reverse proxies in front of one echo backend, all on
# this machine's loopback. See README.md for what each scenario measures.
#
# Environment (defaults in brackets; QUICK=1 shrinks everything for a smoke test):
#   REPS [3]  DURATION [10] (scenarios 1, 2, 7)  LARGE_DURATION [5] (scenario 3)  WARMUP [1]  CONNS [50]
#   IDLE_CONNS [5000]  IDLE_HOLD [2]  HS_PARALLEL [20]  HS_DURATION [5]  H2_STREAMS [50] (scenario 7)
#   TLS_GROUPS [x25519,secp256r1] (key exchange the client offers in every TLS scenario but 5b)
#   PROXY_THREADS [nproc]  ECHO_THREADS [1]  CLIENT_THREADS [1]
#   PORT_BASE [18080]  BUILD [1] (0: use existing binaries)  GATEHOUSE_BIN, BENCH_BIN (prebuilt binaries)
#   KEEP_WORK [0] (1: keep the scratch directory with configs and logs)  RESULTS_DIR [benchmarks/results]
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"
export DEBIAN_FRONTEND=noninteractive

QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
  : "${REPS:=1}" "${DURATION:=2}" "${LARGE_DURATION:=2}" "${WARMUP:=1}" "${IDLE_CONNS:=500}" "${IDLE_HOLD:=1}"
  : "${HS_DURATION:=2}"
fi
REPS="${REPS:-3}"
# Scenarios 3 and 5 default to 5 s so that a cold build (about 13 minutes here) plus three repetitions of
# everything stays under 20 minutes; both are steady enough that 5 s gives tens of thousands of samples.
DURATION="${DURATION:-10}"
LARGE_DURATION="${LARGE_DURATION:-5}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
IDLE_HOLD="${IDLE_HOLD:-2}"
HS_PARALLEL="${HS_PARALLEL:-20}"
HS_DURATION="${HS_DURATION:-5}"
H2_STREAMS="${H2_STREAMS:-50}"
# nginx and HAProxy link OpenSSL 3.0, which has no ML-KEM: offered NIOSSL's default list (X25519MLKEM768 first),
# they settle on X25519 while Gatehouse (BoringSSL) does the post-quantum hybrid, which costs more CPU per
# handshake. So the client offers the same classic groups to all three; scenario 5b measures the hybrid.
TLS_GROUPS="${TLS_GROUPS:-x25519,secp256r1}"
CORES="$(nproc)"
PROXY_THREADS="${PROXY_THREADS:-$CORES}"
ECHO_THREADS="${ECHO_THREADS:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"
PORT_BASE="${PORT_BASE:-18080}"
BUILD="${BUILD:-1}"
KEEP_WORK="${KEEP_WORK:-0}"

# Loopback ports: one plain and one TLS listener per proxy, and the echo backend.
ECHO_PORT=$((PORT_BASE + 20))
GH_PLAIN=$PORT_BASE; GH_TLS=$((PORT_BASE + 10))
NG_PLAIN=$((PORT_BASE + 1)); NG_TLS=$((PORT_BASE + 11))
HA_PLAIN=$((PORT_BASE + 2)); HA_TLS=$((PORT_BASE + 12))
HOST=127.0.0.1

LOG_TAG=compare
# shellcheck source=benchmarks/lib.sh
source "$BENCH_DIR/lib.sh"

RUN_START=$(date +%s)
WORK="$(mktemp -d /tmp/gatehouse-compare.XXXXXX)"
LOG_DIR="$WORK"
# nginx workers run as www-data and must reach their temp directories.
chmod 755 "$WORK"
declare -A PIDS=()


stop_all_on_exit

# --- prerequisites ---------------------------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" || true
[[ $(ulimit -n) -ge $((IDLE_CONNS * 2 + 1000)) ]] || die "open-file limit $(ulimit -n) is too low for IDLE_CONNS=$IDLE_CONNS"

if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  log "installing nginx and haproxy"
  apt-get update -qq
  apt-get install -y -qq nginx haproxy >/dev/null
fi
command -v openssl >/dev/null || apt-get install -y -qq openssl >/dev/null
command -v python3 >/dev/null || die "python3 is needed to summarize results"

for port in $ECHO_PORT $GH_PLAIN $GH_TLS $NG_PLAIN $NG_TLS $HA_PLAIN $HA_TLS; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set PORT_BASE"; fi
done

BUILD_START=$(date +%s)
if [[ "$BUILD" == 1 ]]; then
  # Both products come from the benchmarks package's build: it already compiles the Gatehouse library with all
  # its dependencies, so building the `gatehouse` executable there costs one more link instead of a second
  # full release build of the root package. Same sources, same release flags.
  log "building gatehouse-bench and gatehouse (release)"
  (cd "$BENCH_DIR" && swift build -c release --product gatehouse-bench && swift build -c release --product gatehouse) >&2
fi
BIN_DIR="$(cd "$BENCH_DIR" && swift build -c release --show-bin-path 2>/dev/null || true)"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$BIN_DIR/gatehouse}"
BENCH_BIN="${BENCH_BIN:-$BIN_DIR/gatehouse-bench}"
[[ -x "$GATEHOUSE_BIN" ]] || die "no gatehouse binary at $GATEHOUSE_BIN"
[[ -x "$BENCH_BIN" ]] || die "no gatehouse-bench binary at $BENCH_BIN"
BUILD_SECONDS=$(( $(date +%s) - BUILD_START ))

# --- certificate and configurations ----------------------------------------------------------------------------
# One ECDSA P-256 certificate for every TLS listener, so TLS costs are comparable.
write_certificate "$WORK"
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
chmod 644 "$WORK"/*.pem

# The TLS listener offers ALPN h2 and http/1.1 (Gatehouse's default), like HAProxy's bind below: the HTTP/1.1
# scenarios' client offers no ALPN, so it gets HTTP/1.1 (it checks for an HTTP/1.x 101); h2echo offers only h2.
# No admin listener and no access log; limits (keepalive pings every 30 s, buffers) are the defaults.
cat >"$WORK/gatehouse.yaml" <<EOF
threads: $PROXY_THREADS
listeners:
  - name: plain
    bind: "$HOST:$GH_PLAIN"
  - name: tls
    bind: "$HOST:$GH_TLS"
    tls:
      certificates:
        - { cert: $WORK/cert.pem, key: $WORK/key.pem }
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

write_nginx_conf "$ECHO_PORT"
write_haproxy_cfg "$ECHO_PORT"

# --- processes -------------------------------------------------------------------------------------------------

start_proxy() {
  local name="$1"
  case "$name" in
    echo) "$GATEHOUSE_BIN" echo --bind "$HOST:$ECHO_PORT" --threads "$ECHO_THREADS" >>"$WORK/echo.log" 2>&1 & ;;
    gatehouse) "$GATEHOUSE_BIN" run --config "$WORK/gatehouse.yaml" >>"$WORK/gatehouse.log" 2>&1 & ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >>"$WORK/nginx.log" 2>&1 & ;;
    haproxy) haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 & ;;
  esac
  PIDS[$name]=$!
  case "$name" in
    echo) wait_port "$ECHO_PORT" echo ;;
    gatehouse) wait_port "$GH_PLAIN" gatehouse; wait_port "$GH_TLS" gatehouse ;;
    nginx) wait_port "$NG_PLAIN" nginx; wait_port "$NG_TLS" nginx ;;
    haproxy) wait_port "$HA_PLAIN" haproxy; wait_port "$HA_TLS" haproxy ;;
  esac
}

stop_proxy() {
  local name="$1"
  [[ -n "${PIDS[$name]:-}" ]] && stop_pid "${PIDS[$name]}"
  unset "PIDS[$name]"
}

url_of() {  # url_of TARGET plain|tls
  local port
  case "$1:$2" in
    direct:plain) port=$ECHO_PORT ;;
    gatehouse:plain) port=$GH_PLAIN ;; gatehouse:tls) port=$GH_TLS ;;
    nginx:plain) port=$NG_PLAIN ;; nginx:tls) port=$NG_TLS ;;
    haproxy:plain) port=$HA_PLAIN ;; haproxy:tls) port=$HA_TLS ;;
    *) return 1 ;;
  esac
  [[ "$2" == tls ]] && echo "wss://$HOST:$port/echo" || echo "ws://$HOST:$port/echo"
}

# --- scenarios -------------------------------------------------------------------------------------------------
RAW="$WORK/raw.jsonl"
: >"$RAW"

record() {  # record SCENARIO TARGET REP OUTFILE STATUS
  python3 - "$@" >>"$RAW" <<'EOF'
import json, sys
scenario, target, rep, path, status = sys.argv[1:6]
text = open(path).read().strip()
try:
    result = json.loads(text.splitlines()[-1]) if text else None
except ValueError:
    result = None
print(json.dumps({"scenario": scenario, "target": target, "rep": int(rep), "exit": int(status), "result": result}))
EOF
}

run_case() {  # run_case SCENARIO TARGET REP -- bench arguments...
  local scenario="$1" target="$2" rep="$3"; shift 4
  local out="$WORK/$scenario.$target.$rep.json" status=0
  local watch=()
  [[ "$target" != direct ]] && watch=(--watch-pid "${PIDS[$target]}")
  log "rep $rep  $scenario  $target"
  # The bench bounds itself; timeout is a second fence against a hung run.
  timeout -k 5 300 "$BENCH_BIN" "$@" --threads "$CLIENT_THREADS" "${watch[@]}" --json >"$out" 2>>"$WORK/bench.log" || status=$?
  [[ $status == 0 ]] || log "  exit $status (see $WORK/bench.log)"
  record "$scenario" "$target" "$rep" "$out" "$status"
  sleep 0.3  # let closing connections drain before the next case
}

TARGETS=(direct gatehouse nginx haproxy)
PROXIES=(gatehouse nginx haproxy)
H2_PROXIES=(gatehouse haproxy)  # nginx does not implement RFC 8441 (WebSockets over HTTP/2)
rotate() {  # rotate N items...: the items starting at index N mod count, so no target always goes first
  local n="$1"; shift
  local items=("$@") count=$#
  for ((i = 0; i < count; i++)); do echo "${items[$(((n + i) % count))]}"; done
}

start_proxy echo
for name in "${PROXIES[@]}"; do start_proxy "$name"; done
log "all servers up: echo=${PIDS[echo]} gatehouse=${PIDS[gatehouse]} nginx=${PIDS[nginx]} haproxy=${PIDS[haproxy]}"
BENCH_START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

for ((rep = 1; rep <= REPS; rep++)); do
  for target in $(rotate "$rep" "${TARGETS[@]}"); do
    run_case s1_plain64 "$target" "$rep" -- echo --url "$(url_of "$target" plain)" \
      --connections "$CONNS" --size 64 --duration "$DURATION" --warmup "$WARMUP"
  done
  for target in $(rotate "$rep" "${PROXIES[@]}"); do
    run_case s2_tls64 "$target" "$rep" -- echo --url "$(url_of "$target" tls)" --tls-groups "$TLS_GROUPS" \
      --connections "$CONNS" --size 64 --duration "$DURATION" --warmup "$WARMUP"
  done
  for target in $(rotate "$rep" "${H2_PROXIES[@]}"); do
    run_case s7_h2_64 "$target" "$rep" -- h2echo --url "$(url_of "$target" tls)" --tls-groups "$TLS_GROUPS" \
      --connections 1 --streams "$H2_STREAMS" --size 64 --duration "$DURATION" --warmup "$WARMUP"
  done
  for target in $(rotate "$rep" "${TARGETS[@]}"); do
    run_case s3_plain16k "$target" "$rep" -- echo --url "$(url_of "$target" plain)" \
      --connections "$CONNS" --size 16384 --duration "$LARGE_DURATION" --warmup "$WARMUP"
  done
  for target in $(rotate "$rep" "${PROXIES[@]}"); do
    # A fresh proxy process per measurement: memory freed by an earlier run and kept by the allocator would
    # otherwise hide the cost of new connections.
    stop_proxy "$target"; start_proxy "$target"
    run_case s4_idle "$target" "$rep" -- idle --url "$(url_of "$target" plain)" \
      --connections "$IDLE_CONNS" --hold "$IDLE_HOLD" --settle 1 --concurrency 100 --rate 5000
  done
  for target in $(rotate "$rep" "${PROXIES[@]}"); do
    run_case s5_handshake_tls "$target" "$rep" -- handshake --url "$(url_of "$target" tls)" --tls-groups "$TLS_GROUPS" \
      --parallel "$HS_PARALLEL" --duration "$HS_DURATION" --warmup 1
  done
  # 5b: the client's default groups, so Gatehouse negotiates X25519MLKEM768 (the others cannot: n/a).
  run_case s5b_handshake_pq gatehouse "$rep" -- handshake --url "$(url_of gatehouse tls)" \
    --parallel "$HS_PARALLEL" --duration "$HS_DURATION" --warmup 1
done

for name in "${!PIDS[@]}"; do
  kill -0 "${PIDS[$name]}" 2>/dev/null || log "warning: $name (pid ${PIDS[$name]}) is no longer running"
done

# --- summary ---------------------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
export RUN_SECONDS=$(( $(date +%s) - RUN_START )) BUILD_SECONDS BENCH_SECONDS=$(( $(date +%s) - BENCH_START ))
export LOAD_START LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
export REPS DURATION LARGE_DURATION WARMUP CONNS IDLE_CONNS IDLE_HOLD HS_PARALLEL HS_DURATION H2_STREAMS TLS_GROUPS PROXY_THREADS ECHO_THREADS CLIENT_THREADS QUICK
export NGINX_VERSION="$(nginx -v 2>&1 | sed 's/.*nginx\///')"
export HAPROXY_VERSION="$(haproxy -v | head -1 | awk '{print $3}')"
export SWIFT_VERSION="$(swift --version 2>/dev/null | head -1)"
# The last commit that changed the proxy (not the benchmarks), marked when the work tree has uncommitted changes.
GATEHOUSE_COMMIT="$(git -C "$ROOT_DIR" log -1 --format=%h -- Sources Package.swift 2>/dev/null || true)"
git -C "$ROOT_DIR" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || GATEHOUSE_COMMIT+="+uncommitted"
export GATEHOUSE_COMMIT="${GATEHOUSE_COMMIT:-unknown}"
export CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
export KERNEL="$(uname -r)"
export CORES
python3 "$BENCH_DIR/summarize.py" "$RAW" "$RESULTS_DIR/latest.json" "$RESULTS_DIR/latest.md"
cat "$RESULTS_DIR/latest.md"
