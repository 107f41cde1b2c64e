#!/usr/bin/env bash
# Gatehouse, nginx and HAProxy as WebSocket proxies in the regime where the proxy is the bottleneck: a Go echo
# backend and a Go load generator (gorilla/websocket, both multi-threaded and cheaper per message than any proxy)
# on this machine's loopback; `direct` (client straight to the backend) shows the ceiling. Every proxy runs with
# the same number of workers/threads. See README.md (proxy-bound.sh) for what each scenario measures.
#
# Environment (defaults in brackets; QUICK=1 shrinks everything to a ~2-minute smoke test whose numbers mean little):
#   REPS [3]  DURATION [8] (64 B saturated, ws and wss)  PACED_DURATION [5]  PACED_RATE [10000] echoes/s
#   LARGE_DURATION [5] (16 KiB)  HS_DURATION [5]  HS_PARALLEL [20] (handshake and resume)  WARMUP [1]  CONNS [50]
#   IDLE_CONNS [2000]  IDLE_HOLD [1]  BURST_BYTES [65536] (idleburst's one message per connection)
#   PROXY_THREADS [2]  ECHO_PROCS [nproc]  LOAD_PROCS [nproc]
#   GATEHOUSE_BIN [../.build/release/gatehouse]  GATEHOUSE_LABEL [] (names the build in the table)
#   GATEHOUSE_B_BIN [] (a second Gatehouse build, measured as the extra target gatehouse_b, interleaved with the
#   others: an A/B of two builds in one run)  GATEHOUSE_B_LABEL []
#   SCENARIOS [ws64 paced ws16k wss64 handshake resume idle idlewss idleburst] (a subset runs only those; handshake:
#   full TLS handshakes, resume: the same loops resuming TLS sessions, a session cache per loop; idlewss: idle over
#   TLS; idleburst: idle after one BURST_BYTES message echoed on each connection)
#   PORT_BASE [18300]  KEEP_WORK [0]
#   RESULTS_DIR [benchmarks/results]  RESULTS_NAME [proxy-bound]
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS_DIR="${RESULTS_DIR:-$BENCH_DIR/results}"
RESULTS_NAME="${RESULTS_NAME:-proxy-bound}"
export DEBIAN_FRONTEND=noninteractive

QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
  : "${REPS:=1}" "${DURATION:=2}" "${PACED_DURATION:=2}" "${LARGE_DURATION:=2}" "${HS_DURATION:=2}"
  : "${IDLE_CONNS:=500}" "${IDLE_HOLD:=0.5}"
fi
REPS="${REPS:-3}"
DURATION="${DURATION:-8}"
PACED_DURATION="${PACED_DURATION:-5}"
PACED_RATE="${PACED_RATE:-10000}"
LARGE_DURATION="${LARGE_DURATION:-5}"
HS_DURATION="${HS_DURATION:-5}"
HS_PARALLEL="${HS_PARALLEL:-20}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
IDLE_CONNS="${IDLE_CONNS:-2000}"
IDLE_HOLD="${IDLE_HOLD:-1}"
BURST_BYTES="${BURST_BYTES:-65536}"
CORES="$(nproc)"
PROXY_THREADS="${PROXY_THREADS:-2}"
ECHO_PROCS="${ECHO_PROCS:-$CORES}"
LOAD_PROCS="${LOAD_PROCS:-$CORES}"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$ROOT_DIR/.build/release/gatehouse}"
GATEHOUSE_B_BIN="${GATEHOUSE_B_BIN:-}"
PORT_BASE="${PORT_BASE:-18300}"
KEEP_WORK="${KEEP_WORK:-0}"
SCENARIOS="${SCENARIOS:-ws64 paced ws16k wss64 handshake resume idle idlewss idleburst}"
for scenario in $SCENARIOS; do
  case "$scenario" in ws64 | paced | ws16k | wss64 | handshake | resume | idle | idlewss | idleburst) ;; *) echo "unknown scenario $scenario" >&2; exit 1 ;; esac
done
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

GH_PLAIN=$PORT_BASE; GH_TLS=$((PORT_BASE + 10))
NG_PLAIN=$((PORT_BASE + 1)); NG_TLS=$((PORT_BASE + 11))
HA_PLAIN=$((PORT_BASE + 2)); HA_TLS=$((PORT_BASE + 12))
GHB_PLAIN=$((PORT_BASE + 3)); GHB_TLS=$((PORT_BASE + 13))
ECHO_PLAIN=$((PORT_BASE + 20)); ECHO_TLS=$((PORT_BASE + 21))
HOST=127.0.0.1

LOG_TAG=proxy-bound
# shellcheck source=benchmarks/lib.sh
source "$BENCH_DIR/lib.sh"

RUN_START=$(date +%s)
WORK="$(mktemp -d /tmp/gatehouse-proxy-bound.XXXXXX)"
LOG_DIR="$WORK"
chmod 755 "$WORK"  # nginx workers run as www-data and must reach their temp directories
declare -A PIDS=()

stop_all_on_exit

# --- prerequisites ---------------------------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" || true
[[ $(ulimit -n) -ge $((IDLE_CONNS * 3 + 1000)) ]] || die "open-file limit $(ulimit -n) is too low for IDLE_CONNS=$IDLE_CONNS"

GOPATH_DEBIAN=/usr/share/gocode
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v go >/dev/null || need+=(golang-go)
[[ -d $GOPATH_DEBIAN/src/github.com/gorilla/websocket ]] || need+=(golang-github-gorilla-websocket-dev)
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || die "missing Debian packages: ${need[*]}"
  log "installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed to summarize results"
[[ -x "$GATEHOUSE_BIN" ]] || die "no gatehouse binary at $GATEHOUSE_BIN: run 'swift build -c release --product gatehouse' in $ROOT_DIR or set GATEHOUSE_BIN"
[[ -z "$GATEHOUSE_B_BIN" || -x "$GATEHOUSE_B_BIN" ]] || die "no gatehouse binary at GATEHOUSE_B_BIN=$GATEHOUSE_B_BIN"

for port in $GH_PLAIN $GH_TLS $NG_PLAIN $NG_TLS $HA_PLAIN $HA_TLS $GHB_PLAIN $GHB_TLS $ECHO_PLAIN $ECHO_TLS; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set PORT_BASE"; fi
done

# The Go tools are built from source on every run, in GOPATH mode against Debian's gorilla/websocket: no
# module downloads, and no binaries in the repository.
log "building the Go echo backend and load generator"
mkdir -p "$WORK/bin"
(cd "$BENCH_DIR" && export GO111MODULE=off GOPATH=$GOPATH_DEBIAN GOFLAGS= &&
  go build -o "$WORK/bin/echo" ./go/echo && go build -o "$WORK/bin/load" ./go/load) >&2
LOAD="$WORK/bin/load"

# --- certificate and configurations ----------------------------------------------------------------------------
# One ECDSA P-256 certificate for every TLS listener (the backend's too), so TLS costs are comparable.
write_certificate "$WORK"
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
chmod 644 "$WORK"/*.pem

# The same shape as compare.sh's configurations: no access log, no admin listener, default limits; every proxy
# forwards plain WebSockets to the backend's ws listener.
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
    servers: ["$HOST:$ECHO_PLAIN"]
routes:
  - name: echo
    path: "/echo"
    backend: echo
    origins: ["*"]
log: { level: warning, access_log: false }
EOF
# The second build gets the same configuration on its own ports.
sed -e "s/:$GH_PLAIN\"/:$GHB_PLAIN\"/" -e "s/:$GH_TLS\"/:$GHB_TLS\"/" "$WORK/gatehouse.yaml" >"$WORK/gatehouse-b.yaml"

write_nginx_conf "$ECHO_PLAIN"
write_haproxy_cfg "$ECHO_PLAIN"

# --- processes -------------------------------------------------------------------------------------------------
start_server() {
  local name="$1"
  case "$name" in
    echo) "$WORK/bin/echo" -addr "$HOST:$ECHO_PLAIN" -tls-addr "$HOST:$ECHO_TLS" -cert "$WORK/cert.pem" \
            -key "$WORK/key.pem" -procs "$ECHO_PROCS" >>"$WORK/echo.log" 2>&1 & ;;
    gatehouse) "$GATEHOUSE_BIN" run --config "$WORK/gatehouse.yaml" >>"$WORK/gatehouse.log" 2>&1 & ;;
    gatehouse_b) "$GATEHOUSE_B_BIN" run --config "$WORK/gatehouse-b.yaml" >>"$WORK/gatehouse_b.log" 2>&1 & ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >>"$WORK/nginx.log" 2>&1 & ;;
    haproxy) haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 & ;;
  esac
  PIDS[$name]=$!
  case "$name" in
    echo) wait_port "$ECHO_PLAIN" echo; wait_port "$ECHO_TLS" echo ;;
    gatehouse) wait_port "$GH_PLAIN" gatehouse; wait_port "$GH_TLS" gatehouse ;;
    gatehouse_b) wait_port "$GHB_PLAIN" gatehouse_b; wait_port "$GHB_TLS" gatehouse_b ;;
    nginx) wait_port "$NG_PLAIN" nginx; wait_port "$NG_TLS" nginx ;;
    haproxy) wait_port "$HA_PLAIN" haproxy; wait_port "$HA_TLS" haproxy ;;
  esac
}

stop_server() {
  local name="$1"
  [[ -n "${PIDS[$name]:-}" ]] && stop_pid "${PIDS[$name]}"
  unset "PIDS[$name]"
}

url_of() {  # url_of TARGET ws|wss; `direct` is the backend itself
  local port
  case "$1:$2" in
    direct:ws) port=$ECHO_PLAIN ;; direct:wss) port=$ECHO_TLS ;;
    gatehouse:ws) port=$GH_PLAIN ;; gatehouse:wss) port=$GH_TLS ;;
    gatehouse_b:ws) port=$GHB_PLAIN ;; gatehouse_b:wss) port=$GHB_TLS ;;
    nginx:ws) port=$NG_PLAIN ;; nginx:wss) port=$NG_TLS ;;
    haproxy:ws) port=$HA_PLAIN ;; haproxy:wss) port=$HA_TLS ;;
    *) return 1 ;;
  esac
  echo "$2://$HOST:$port/echo"
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

run_case() {  # run_case SCENARIO TARGET REP SECONDS -- load arguments...
  local scenario="$1" target="$2" rep="$3" seconds="$4"; shift 5
  local out="$WORK/$scenario.$target.$rep.json" status=0
  local watch=()
  # The proxy's CPU (with nginx's workers) is the measured cost; the backend's is reported beside it.
  [[ "$target" != direct ]] && watch=(-watch "${PIDS[$target]}")
  log "rep $rep  $scenario  $target"
  # The load generator bounds itself; timeout is a second fence against a hung run.
  timeout -k 5 "$(awk -v s="$seconds" 'BEGIN { printf "%d", s + 60 }')" \
    "$LOAD" "$@" -procs "$LOAD_PROCS" "${watch[@]}" -watch-other "${PIDS[echo]}" >"$out" 2>>"$WORK/load.log" || status=$?
  [[ $status == 0 ]] || log "  exit $status (see $WORK/load.log)"
  record "$scenario" "$target" "$rep" "$out" "$status"
  sleep 0.3  # let closing connections drain before the next case
}

TARGETS=(direct gatehouse nginx haproxy)
PROXIES=(gatehouse nginx haproxy)
if [[ -n "$GATEHOUSE_B_BIN" ]]; then TARGETS+=(gatehouse_b); PROXIES+=(gatehouse_b); fi
rotate() {  # rotate N items...: the items starting at index N mod count, so no target always goes first
  local n="$1"; shift
  local items=("$@") count=$#
  for ((i = 0; i < count; i++)); do echo "${items[$(((n + i) % count))]}"; done
}

start_server echo
for name in "${PROXIES[@]}"; do start_server "$name"; done
log "servers up: echo=${PIDS[echo]} gatehouse=${PIDS[gatehouse]} nginx=${PIDS[nginx]} haproxy=${PIDS[haproxy]} gatehouse_b=${PIDS[gatehouse_b]:-none}"
BENCH_START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

echo_args() {  # echo_args URL SIZE DURATION [RATE]
  echo -mode echo -url "$1" -ca "$WORK/cert.pem" -conns "$CONNS" -size "$2" -duration "$3" -warmup "$WARMUP" -rate "${4:-0}"
}

for ((rep = 1; rep <= REPS; rep++)); do
  if want ws64; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # shellcheck disable=SC2046 # word splitting of echo_args is wanted (no spaces in its values)
      run_case ws64 "$target" "$rep" "$DURATION" -- $(echo_args "$(url_of "$target" ws)" 64 "$DURATION")
    done
  fi
  if want paced; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # shellcheck disable=SC2046
      run_case ws64_paced "$target" "$rep" "$PACED_DURATION" -- \
        $(echo_args "$(url_of "$target" ws)" 64 "$PACED_DURATION" "$PACED_RATE")
    done
  fi
  if want ws16k; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # shellcheck disable=SC2046
      run_case ws16k "$target" "$rep" "$LARGE_DURATION" -- $(echo_args "$(url_of "$target" ws)" 16384 "$LARGE_DURATION")
    done
  fi
  if want wss64; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # shellcheck disable=SC2046
      run_case wss64 "$target" "$rep" "$DURATION" -- $(echo_args "$(url_of "$target" wss)" 64 "$DURATION")
    done
  fi
  if want handshake; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # No -ca: skipping chain verification spares the client one ECDSA verify per handshake; the server's
      # work is the same either way.
      run_case handshake "$target" "$rep" "$HS_DURATION" -- -mode handshake -url "$(url_of "$target" wss)" \
        -parallel "$HS_PARALLEL" -duration "$HS_DURATION" -warmup "$WARMUP"
    done
  fi
  if want resume; then
    for target in $(rotate "$rep" "${TARGETS[@]}"); do
      # The same loops, each with a TLS session cache of its own: after a loop's first (warm-up) handshake the
      # next ones resume with the server's latest ticket (TLS 1.3 PSK, or a TLS 1.2 ticket), and the load
      # generator counts those that did.
      run_case resume "$target" "$rep" "$HS_DURATION" -- -mode handshake -resume -url "$(url_of "$target" wss)" \
        -parallel "$HS_PARALLEL" -duration "$HS_DURATION" -warmup "$WARMUP"
    done
  fi
  # idle: plain ws; idlewss: the same over TLS, as browsers connect (adds each proxy's TLS state per connection);
  # idleburst: plain ws, but each connection first carries one BURST_BYTES message and its echo (what a proxy keeps
  # per connection after one large message, such as receive buffers grown for it).
  for idle in idle:ws idlewss:wss "idleburst:ws:-burst $BURST_BYTES"; do
    IFS=: read -r scenario scheme extra <<<"$idle"
    want "$scenario" || continue
    for target in $(rotate "$rep" "${PROXIES[@]}"); do
      # A fresh proxy per measurement: memory an earlier run freed and the allocator kept would hide the cost of
      # new connections.
      stop_server "$target"; start_server "$target"
      # shellcheck disable=SC2086 # $extra is zero or more whole arguments
      run_case "$scenario" "$target" "$rep" "$IDLE_HOLD" -- -mode idle -url "$(url_of "$target" "$scheme")" \
        -conns "$IDLE_CONNS" -hold "$IDLE_HOLD" -settle 1 -concurrency 100 $extra
    done
  done
done

for name in "${!PIDS[@]}"; do
  kill -0 "${PIDS[$name]}" 2>/dev/null || log "warning: $name (pid ${PIDS[$name]}) is no longer running"
done

# --- summary ---------------------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
export RUN_SECONDS=$(( $(date +%s) - RUN_START )) BENCH_SECONDS=$(( $(date +%s) - BENCH_START ))
export LOAD_START LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
export REPS DURATION PACED_DURATION PACED_RATE LARGE_DURATION HS_DURATION HS_PARALLEL WARMUP CONNS IDLE_CONNS IDLE_HOLD BURST_BYTES
export SCENARIOS PROXY_THREADS ECHO_PROCS LOAD_PROCS QUICK CORES GATEHOUSE_BIN
export NGINX_VERSION="$(nginx -v 2>&1 | sed 's/.*nginx\///')"
export HAPROXY_VERSION="$(haproxy -v | head -1 | awk '{print $3}')"
export GO_VERSION="$(go version | awk '{print $3}')"
export GORILLA_VERSION="$(dpkg-query -W -f='${Version}' golang-github-gorilla-websocket-dev 2>/dev/null || echo unknown)"
# Which build was measured: GATEHOUSE_LABEL (e.g. a commit) if given, and the binary's checksum.
export GATEHOUSE_LABEL="${GATEHOUSE_LABEL:-}" GATEHOUSE_SHA256="$(sha256sum "$GATEHOUSE_BIN" | cut -c1-12)"
export GATEHOUSE_B_LABEL="${GATEHOUSE_B_LABEL:-}" GATEHOUSE_B_SHA256=""
[[ -z "$GATEHOUSE_B_BIN" ]] || GATEHOUSE_B_SHA256="$(sha256sum "$GATEHOUSE_B_BIN" | cut -c1-12)"
export CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
export KERNEL="$(uname -r)"
python3 "$BENCH_DIR/proxy_bound_summary.py" "$RAW" "$RESULTS_DIR/$RESULTS_NAME.json" "$RESULTS_DIR/$RESULTS_NAME.md"
cat "$RESULTS_DIR/$RESULTS_NAME.md"
