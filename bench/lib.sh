# Shared by bench/run.sh and bench/profile.sh (sourced, from the repository
# root): a temp dir removed at exit with every process started here, the
# in-memory and nginx backends, HAProxy and vakt with the same listener, wrk
# runs and /proc readings. Only 127.0.0.1 is used.

dir=$(mktemp -d /tmp/vakt-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT WHAT LOG
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  { echo "bench: $2 does not listen on 127.0.0.1:$1 after 10 s; its log ($3):"; cat "$3"; } >&2; exit 1
}

# --- backends: started once, shared by every scenario -------------------------
# In-memory: HAProxy frontends answering a fixed 13-byte body, the fastest
# backend available here, so the figures measure the proxies. Sets m1, m2.
start_mem_backends() {
  m1=$(port) m2=$(port)
  cat > "$dir/backends.cfg" <<EOF
global
    maxconn 9000
    nbthread 1
defaults
    mode http
    maxconn 9000
    timeout connect 5s
    timeout client 50s
    timeout server 50s
frontend w1
    bind 127.0.0.1:$m1
    http-request return status 200 content-type text/plain string "hello from w1"
frontend w2
    bind 127.0.0.1:$m2
    http-request return status 200 content-type text/plain string "hello from w2"
EOF
  haproxy -db -f "$dir/backends.cfg" >"$dir/backends.log" 2>&1 & pids+=($!)
  wait_port "$m1" "the in-memory backend" "$dir/backends.log"; wait_port "$m2" "the in-memory backend" "$dir/backends.log"
}

# nginx: Debian's package with a config of its own (pid file, logs and temp
# paths in $dir; never the system service). One worker, like the in-memory
# backends; nginx's defaults otherwise (keepalive_requests 1000: each server
# connection is closed after 1,000 requests, as in production). Sets n1, n2.
start_nginx_backends() {
  n1=$(port) n2=$(port)
  mkdir -p "$dir/nginx"
  cat > "$dir/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    default_type text/plain;
    server { listen 127.0.0.1:$n1; location / { return 200 "hello from n1"; } }
    server { listen 127.0.0.1:$n2; location / { return 200 "hello from n2"; } }
}
EOF
  nginx -p "$dir/nginx" -e "$dir/nginx/error.log" -c "$dir/nginx/nginx.conf" >/dev/null 2>&1 & pids+=($!)
  wait_port "$n1" nginx "$dir/nginx/error.log"; wait_port "$n2" nginx "$dir/nginx/error.log"
}

# --- the two proxies, fresh for each scenario --------------------------------
# write_configs BACKEND_PORT1 BACKEND_PORT2 THREADS HTTP_CLOSE MAXCONN HTTP_REQUEST_TIMEOUT [PEM]
# writes $dir/haproxy.cfg and $dir/vakt.toml; sets hp, vp (their ports) and,
# with PEM (chain and key, as HAProxy's `crt`), hs, vs: their TLS ports
# (ALPN h2 and http/1.1, no redirect).
write_configs() {
  local b1=$1 b2=$2 threads=$3 close=$4 maxconn=$5 http_request=$6 pem=${7:-}
  hp=$(port) vp=$(port)
  local hbind_tls="" vtls=""
  if [ -n "$pem" ]; then
    hs=$(port) vs=$(port)
    hbind_tls="    bind 127.0.0.1:$hs ssl crt $pem alpn h2,http/1.1"
    vtls="tls = { bind = [\"127.0.0.1:$vs\"], crt = [\"$pem\"], redirect = false }"
  fi
  local hclose=""
  [ "$close" = true ] && hclose="    option httpclose"
  cat > "$dir/haproxy.cfg" <<EOF
global
    maxconn $maxconn
    nbthread $threads
    # HAProxy asks for 2 × maxconn descriptors and by default refuses to
    # start when it cannot have them (a container may cap the hard limit
    # at 20000): run with what there is, as vakt does.
    no strict-limits
defaults
    mode http
    maxconn $maxconn
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    option forwardfor
$hclose
listen bench
    bind 127.0.0.1:$hp
$hbind_tls
    balance roundrobin
    cookie SERVERID insert indirect nocache
    server w1 127.0.0.1:$b1 cookie w1
    server w2 127.0.0.1:$b2 cookie w2
EOF
  cat > "$dir/vakt.toml" <<EOF
[global]
maxconn = $maxconn
log = "off"
threads = $threads

[defaults]
maxconn = $maxconn
forwardfor = true
http_close = $close
timeout = { connect = "5s", client = "50s", server = "50s", queue = "5s", http_request = "$http_request" }

[[listen]]
name = "bench"
bind = ["127.0.0.1:$vp"]
$vtls
balance = "roundrobin"
cookie = { name = "SERVERID", mode = "insert", indirect = true, nocache = true }

[[listen.server]]
name = "w1"
addr = "127.0.0.1:$b1"
cookie = "w1"

[[listen.server]]
name = "w2"
addr = "127.0.0.1:$b2"
cookie = "w2"
EOF
}

# start_proxies: write_configs's arguments. Needs $vakt; sets hp, vp and hpid, vpid.
start_proxies() {
  write_configs "$@"
  haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 & hpid=$!; pids+=($hpid)
  "$vakt" proxy --config "$dir/vakt.toml" >"$dir/vakt.log" 2>&1 & vpid=$!; pids+=($vpid)
  wait_port "$hp" HAProxy "$dir/haproxy.log"; wait_port "$vp" vakt "$dir/vakt.log"
  curl -sf -o /dev/null "http://127.0.0.1:$hp/" || { echo "bench: HAProxy does not answer:"; cat "$dir/haproxy.log"; exit 1; } >&2
  curl -sf -o /dev/null "http://127.0.0.1:$vp/" || { echo "bench: vakt does not answer:"; cat "$dir/vakt.log"; exit 1; } >&2
}
stop_proxies() {
  kill "$hpid" "$vpid" 2>/dev/null || true
  wait "$hpid" "$vpid" 2>/dev/null || true
}

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }   # kib PID VmRSS|VmHWM
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$1" | median; }

# One wrk run → "req/s p50_ms p99_ms errors" (errors: socket errors and
# non-2xx/3xx answers, which would make req/s meaningless). $scheme
# (default http) picks https for the TLS scenarios.
run_wrk() { # PORT CONNECTIONS DURATION [wrk options...]
  local p=$1 c=$2 d=$3; shift 3
  wrk -t1 -c"$c" -d"$d" --latency "$@" "${scheme:-http}://127.0.0.1:$p/" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 } /Non-2xx/ { err += $NF }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }'
}

# One h2load run over TLS (ALPN h2) → "req/s p50_ms p99_ms errors"; h2load
# gives no percentiles, so p50 is its mean request time and p99 its max.
run_h2load() { # PORT CONNECTIONS STREAMS DURATION_SECONDS
  local p=$1 c=$2 m=$3 d=$4
  h2load -c"$c" -m"$m" -D"$d" --warm-up-time=1 "https://127.0.0.1:$p/" 2>&1 | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^finished in/ { sub(/req\/s,?/, "", $4); rps = $4 }
    /^requests:/ { err += $10 + $12 + $14 }
    /^status codes:/ { err += $7 + $9 }
    /^time for request:/ { mean = ms($6); max = ms($5) }
    END { printf "%.0f %.3f %.3f %d\n", rps, mean, max, err }'
}

# An ECDSA P-256 certificate for 127.0.0.1, chain and key in one PEM.
make_pem() { # PATH
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
    -keyout "$1.key" -out "$1.crt" 2>/dev/null
  cat "$1.crt" "$1.key" > "$1"
}
