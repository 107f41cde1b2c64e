# Helpers shared by compare.sh, relay-overhead.sh and profile.sh (sourced, not run).
# The sourcing script sets LOG_TAG (log prefix), LOG_DIR (where each process's NAME.log goes) and the
# associative array PIDS (NAME -> pid of every process it started).

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stop_pid PID [TENTHS]: SIGTERM, up to TENTHS tenths of a second to exit (default 50), then SIGKILL.
stop_pid() {
  local pid="$1" tenths="${2:-50}"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# wait_port PORT NAME [TENTHS]: until something listens on PORT (default 10 s); dies if PIDS[NAME] exits first.
wait_port() {
  local port="$1" name="$2" tenths="${3:-100}"
  for _ in $(seq 1 "$tenths"); do
    if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
    kill -0 "${PIDS[$name]}" 2>/dev/null || die "$name exited; see $LOG_DIR/$name.log"
    sleep 0.1
  done
  die "$name did not listen on $port; see $LOG_DIR/$name.log"
}
