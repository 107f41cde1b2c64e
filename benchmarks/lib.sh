# Helpers shared by compare.sh, proxy-bound.sh, relay-overhead.sh and profile.sh (sourced, not run).
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

# stop_all_on_exit: on exit (however it happens), stop every process in PIDS and remove WORK, unless the run failed
# or KEEP_WORK=1; INT and TERM exit with 130. For scripts whose only cleanup is that.
stop_all_on_exit() {
  trap '_stop_all_and_exit' EXIT
  trap 'exit 130' INT TERM
}
_stop_all_and_exit() {
  local status=$?
  for name in "${!PIDS[@]}"; do stop_pid "${PIDS[$name]}"; done
  if [[ "${KEEP_WORK:-0}" == 1 || $status -ne 0 ]]; then log "scratch directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit $status
}

# write_certificate DIR: DIR/key.pem and DIR/cert.pem, one ECDSA P-256 certificate for localhost and 127.0.0.1, so
# every TLS listener of a comparison costs the same.
write_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# The nginx and HAProxy configurations of the comparisons, in front of one echo backend on HOST:BACKEND_PORT.
# Uses WORK, HOST, PROXY_THREADS, NG_PLAIN, NG_TLS, HA_PLAIN, HA_TLS and the certificate files in WORK.

# write_nginx_conf BACKEND_PORT: $WORK/nginx/nginx.conf
write_nginx_conf() {
  local NGINX_USER=""
  mkdir -p "$WORK/nginx"
  if [[ $(id -u) == 0 ]] && id www-data >/dev/null 2>&1; then NGINX_USER="user www-data;"; fi
  cat >"$WORK/nginx/nginx.conf" <<EOF
$NGINX_USER
worker_processes $PROXY_THREADS;
worker_rlimit_nofile $(ulimit -Hn);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
  worker_connections $(( $(ulimit -Hn) - 1000 ));
}
http {
  access_log off;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      close;
  }
  upstream echo {
    server $HOST:$1;
  }
  server {
    listen $HOST:$NG_PLAIN backlog=4096;
    listen $HOST:$NG_TLS ssl backlog=4096;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /echo {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_connect_timeout 5s;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
EOF
}

# write_haproxy_cfg BACKEND_PORT: $WORK/haproxy.cfg
write_haproxy_cfg() {
  # maxconn bounds HAProxy's descriptor needs (about two per connection) below the hard open-file limit.
  local HA_MAXCONN=$(( ($(ulimit -Hn) - 1000) / 2 ))
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread $PROXY_THREADS
  maxconn $HA_MAXCONN
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  maxconn $HA_MAXCONN
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
frontend websocket
  bind $HOST:$HA_PLAIN backlog 4096
  bind $HOST:$HA_TLS ssl crt $WORK/haproxy.pem alpn h2,http/1.1 backlog 4096
  default_backend echo
backend echo
  server echo1 $HOST:$1
EOF
}
