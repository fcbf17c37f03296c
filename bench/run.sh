#!/usr/bin/env bash
# Side-by-side benchmark: vakt proxy vs HAProxy (Debian package) with the same
# listener (roundrobin, cookie insert indirect nocache, forwardfor,
# keep-alive) in front of the same two backends, driven by the same wrk on
# loopback. Runs alternate (HAProxy, vakt, HAProxy, ...) so that machine
# noise hits both; the table shows medians.
#
# Usage: bench/run.sh [--duration 10s] [--connections 64] [--rounds 3]
#                     [--vakt-threads N] [--haproxy-threads N]
#
# Backends are HAProxy frontends answering a fixed 13-byte body from memory
# (`http-request return`): the fastest backend available here, so the
# figures measure the proxies, not the backends. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s connections=64 rounds=3 vthreads="" hthreads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --vakt-threads) vthreads=$2; shift 2 ;;
    --haproxy-threads) hthreads=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
for tool in haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: apt-get install -y haproxy wrk" >&2; exit 1; }
done
cores=$(nproc)
vthreads=${vthreads:-1}

cargo build --release --quiet
vakt=target/x86_64-unknown-linux-gnu/release/vakt
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
b1=$(port) b2=$(port) hp=$(port) vp=$(port)

cat > "$dir/backends.cfg" <<EOF
global
    maxconn 4000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 50s
    timeout server 50s
frontend w1
    bind 127.0.0.1:$b1
    http-request return status 200 content-type text/plain string "hello from w1"
frontend w2
    bind 127.0.0.1:$b2
    http-request return status 200 content-type text/plain string "hello from w2"
EOF
cat > "$dir/haproxy.cfg" <<EOF
global
    maxconn 4000
    nbthread $hthreads
defaults
    mode http
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    option forwardfor
listen bench
    bind 127.0.0.1:$hp
    balance roundrobin
    cookie SERVERID insert indirect nocache
    server w1 127.0.0.1:$b1 cookie w1
    server w2 127.0.0.1:$b2 cookie w2
EOF
cat > "$dir/vakt.toml" <<EOF
[global]
maxconn = 4000
log = "off"
threads = $vthreads

[defaults]
forwardfor = true
timeout = { connect = "5s", client = "50s", server = "50s", queue = "5s", http_request = "10s" }

[[listen]]
name = "bench"
bind = ["127.0.0.1:$vp"]
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

haproxy -db -f "$dir/backends.cfg" >/dev/null 2>&1 & pids+=($!)
haproxy -db -f "$dir/haproxy.cfg" >/dev/null 2>&1 & hpid=$!; pids+=($hpid)
"$vakt" proxy --config "$dir/vakt.toml" >"$dir/vakt.log" 2>&1 & vpid=$!; pids+=($vpid)
for p in $b1 $b2 $hp $vp; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
curl -sf "http://127.0.0.1:$vp/" >/dev/null || { echo "bench: vakt does not answer:"; cat "$dir/vakt.log"; exit 1; } >&2

# One wrk run → "req/s p50_ms p99_ms"
run() {
  wrk -t1 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$1/" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "warming up..."
wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$hp/" >/dev/null
wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$vp/" >/dev/null
direct=$(run "$b1")
: > "$dir/h" ; : > "$dir/v"
for r in $(seq "$rounds"); do
  run "$hp" >> "$dir/h"; run "$vp" >> "$dir/v"
  echo "round $r: haproxy $(tail -1 "$dir/h")   vakt $(tail -1 "$dir/v")   (req/s p50 p99)"
done
col() { awk -v c="$2" '{ print $c }' "$1" | median; }
h_rps=$(col "$dir/h" 1) v_rps=$(col "$dir/v" 1)
ratio=$(awk -v a="$v_rps" -v b="$h_rps" 'BEGIN { printf "%.2f", a / b }')
mkdir -p bench/out
{
  echo "| $(date -u +%F) · $cores cores · wrk -t1 -c$connections -d$duration · $rounds rounds (median) | req/s | p50 ms | p99 ms | peak RSS |"
  echo "|---|---:|---:|---:|---:|"
  echo "| HAProxy $(haproxy -v | awk 'NR==1 { print $3 }') (nbthread $hthreads) | $h_rps | $(col "$dir/h" 2) | $(col "$dir/h" 3) | $(hwm $hpid) kB |"
  echo "| vakt (threads $vthreads) | $v_rps | $(col "$dir/v" 2) | $(col "$dir/v" 3) | $(hwm $vpid) kB |"
  echo "| direct to one backend | $(echo "$direct" | cut -d' ' -f1) | $(echo "$direct" | cut -d' ' -f2) | $(echo "$direct" | cut -d' ' -f3) | |"
  echo
  echo "vakt / HAProxy requests/s: **$ratio**"
} | tee bench/out/latest.md
