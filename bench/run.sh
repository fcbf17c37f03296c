#!/usr/bin/env bash
# Side-by-side benchmark: vakt proxy vs HAProxy (Debian's 2.6) with the same
# listener (roundrobin, cookie insert indirect nocache, forwardfor) in front
# of the same two backends, one scenario at a time. Within a scenario both
# proxies start fresh and runs alternate (HAProxy then vakt, then vakt then
# HAProxy, ...) so that machine noise hits both; the table shows medians.
# Only 127.0.0.1 is used. A benchmark, not a test: CI does not run it.
#
# Usage: bench/run.sh [--scenario NAME]... [--duration 10s] [--rounds 3]
#                     [--idle-conns 10000] [--vakt PATH]
#
# Scenarios (default: all, in this order; --scenario may repeat or take a
# comma-separated list; --list prints them):
#   ka-nginx      keep-alive, nginx backends (two server blocks), wrk -c64
#   ka-mem        keep-alive, in-memory backends (HAProxy `http-request return`), c64
#   httpclose     `option httpclose` / `http_close = true`: a new server connection per request
#   client-close  clients without keep-alive (wrk -H 'Connection: close'), c64
#   c1000         1,000 concurrent keep-alive clients
#   idle-10k      10,000 idle keep-alive connections (bench/idle_conns.py): RSS per
#                 connection (first round, fresh process), and RSS 5 s after the
#                 last round closed against before the first opened
#   threads2      two worker threads each (vakt threads = 2, HAProxy nbthread 2), c64
#   tls-ka        HTTPS keep-alive (ECDSA P-256, TLS 1.3), nginx backends, wrk -c64
#   tls-handshake HTTPS with a new TLS handshake per request (Connection: close), nginx backends
#   h2            HTTP/2 over TLS, h2load -c64 -m10, nginx backends (p50 column: mean, p99: max)
#
# Every other scenario runs one worker thread per proxy: on a 2-core machine
# wrk and the backends need the other core. The table goes to stdout and to
# bench/out/latest.md (not tracked).
set -euo pipefail
cd "$(dirname "$0")/.."

all_scenarios="ka-nginx ka-mem httpclose client-close c1000 idle-10k threads2 tls-ka tls-handshake h2"
duration=10s rounds=3 idle_conns=10000 vakt="" picked=""
die() { echo "bench: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) [ $# -ge 2 ] || die "--scenario needs a name (one of: $all_scenarios)"
                picked="$picked ${2//,/ }"; shift 2 ;;
    --duration) [ $# -ge 2 ] || die "--duration needs a value such as 10s"; duration=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds=$2; shift 2 ;;
    --idle-conns) [ $# -ge 2 ] || die "--idle-conns needs a number"; idle_conns=$2; shift 2 ;;
    --vakt) [ $# -ge 2 ] || die "--vakt needs the path of a vakt binary"; vakt=$2; shift 2 ;;
    --list) echo "$all_scenarios" | tr ' ' '\n'; exit 0 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (bench/run.sh --help lists them)" ;;
  esac
done
[[ "$duration" =~ ^[1-9][0-9]*[smh]?$ ]] || die "--duration $duration: give a wrk duration such as 5s or 1m"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds $rounds: give a whole number of rounds, at least 1"
[[ "$idle_conns" =~ ^[1-9][0-9]*$ ]] || die "--idle-conns $idle_conns: give a whole number of connections"
scenarios=""
for s in ${picked:-$all_scenarios}; do
  case " $all_scenarios " in
    *" $s "*) scenarios="$scenarios $s" ;;
    *) die "--scenario $s: unknown scenario; pick one of: $all_scenarios" ;;
  esac
done
needs() { case " $scenarios " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

tools="haproxy wrk python3 curl"
tls_scenarios=no
for s in tls-ka tls-handshake h2; do needs $s && tls_scenarios=yes; done
{ needs ka-nginx || [ $tls_scenarios = yes ]; } && tools="$tools nginx"
[ $tls_scenarios = yes ] && tools="$tools openssl"
needs h2 && tools="$tools h2load"
for tool in $tools; do
  pkg=${tool/nginx/nginx-light}; pkg=${pkg/h2load/nghttp2-client}
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: apt-get install -y $pkg" >&2; exit 1; }
done

if [ -n "$vakt" ]; then
  [ -x "$vakt" ] || die "--vakt $vakt: not an executable file; give the path of a vakt binary"
  vakt_label="vakt ($vakt)"
else
  cargo build --release --quiet
  vakt=target/x86_64-unknown-linux-gnu/release/vakt
  vakt_label="vakt $(git describe --always --dirty 2>/dev/null || echo '(this tree)')"
fi
vakt=$(realpath "$vakt")
haproxy_version=$(haproxy -v | awk 'NR==1 { print $3 }')
cores=$(nproc)

# Enough descriptors for idle-10k: each proxy holds the client connections
# and its server connections. A container may cap the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if needs idle-10k && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_conns * 2 + 100)) ]; then
  echo "bench: note: ulimit -n is $(ulimit -n), below 2 × $idle_conns + 100; a proxy that keeps a server connection per idle client will run out of descriptors" >&2
fi

# Temp dir, backends, proxies, wrk: shared with bench/profile.sh.
. bench/lib.sh
start_mem_backends
{ needs ka-nginx || [ $tls_scenarios = yes ]; } && start_nginx_backends
[ $tls_scenarios = yes ] && make_pem "$dir/bench.pem"

rows=()
# "scenario|h rps|h p50|h p99|h rss|v rps|v p50|v p99|v rss|ratio|target|met"
throughput() { # NAME BACKEND(mem|nginx) CONNECTIONS THREADS HTTP_CLOSE [wrk options...]
  local name=$1 backend=$2 c=$3 threads=$4 close=$5; shift 5
  local b1=$m1 b2=$m2
  [ "$backend" = nginx ] && b1=$n1 b2=$n2
  # TLS scenarios: the proxies' TLS ports, https for wrk, h2load for h2.
  local pem="" tool="wrk -t1 -c$c -d$duration $*" extra=("$@")
  case "$name" in tls-*|h2) pem=$dir/bench.pem ;; esac
  [ "$name" = h2 ] && tool="h2load -c$c -m10 -D$duration"
  echo "== $name: $tool, $backend backends, threads $threads, http_close $close${pem:+, TLS (ECDSA P-256)}"
  start_proxies "$b1" "$b2" "$threads" "$close" 4000 10s $pem
  local ht=$hp vt=$vp
  [ -n "$pem" ] && ht=$hs vt=$vs
  measure() { # PORT DURATION
    if [ "$name" = h2 ]; then run_h2load "$1" "$c" 10 "$2"
    elif [ -n "$pem" ]; then scheme=https run_wrk "$1" "$c" "$2" "${extra[@]}"
    else run_wrk "$1" "$c" "$2" "${extra[@]}"; fi
  }
  measure "$ht" 2s >/dev/null; measure "$vt" 2s >/dev/null
  : > "$dir/h"; : > "$dir/v"
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
      measure "$ht" "$duration" >> "$dir/h"; measure "$vt" "$duration" >> "$dir/v"
    else
      measure "$vt" "$duration" >> "$dir/v"; measure "$ht" "$duration" >> "$dir/h"
    fi
    echo "   round $r: haproxy $(tail -1 "$dir/h")   vakt $(tail -1 "$dir/v")   (req/s p50 p99 errors)"
  done
  local hh vh
  hh=$(kib "$hpid" VmHWM) vh=$(kib "$vpid" VmHWM)
  stop_proxies
  local hr hp50 hp99 vr vp50 vp99 errs
  hr=$(col "$dir/h" 1) hp50=$(col "$dir/h" 2) hp99=$(col "$dir/h" 3)
  vr=$(col "$dir/v" 1) vp50=$(col "$dir/v" 2) vp99=$(col "$dir/v" 3)
  errs=$(cat "$dir/h" "$dir/v" | awk '{ s += $4 } END { print s + 0 }')
  local with_p99=no target="≥ 1.1 req/s"
  case "$name" in
    ka-nginx|ka-mem|c1000) with_p99=yes target="≥ 1.1 req/s, p99 ≤" ;;
    tls-*|h2) target="≥ 1.0 req/s" ;; # issue 17: at least HAProxy's figures
  esac
  rows+=("$(awk -v n="$name" -v hr="$hr" -v hp50="$hp50" -v hp99="$hp99" -v hh="$hh" \
      -v vr="$vr" -v vp50="$vp50" -v vp99="$vp99" -v vh="$vh" -v wp="$with_p99" -v t="$target" -v e="$errs" 'BEGIN {
    ratio = vr / hr; p = vp99 / hp99
    need = (t ~ /1\.0/) ? 1.0 : 1.1
    met = (ratio >= need && (wp == "no" || vp99 <= hp99)) ? "yes" : "no"
    if (e > 0) met = met " (" e " errors)"
    printf "%s|%.0f|%.2f|%.2f|%.1f MB|%.0f|%.2f|%.2f|%.1f MB|%.2f (p99 %.2f)|%s|%s",
      n, hr, hp50, hp99, hh / 1024, vr, vp50, vp99, vh / 1024, ratio, p, t, met }')")
}

# One idle round against one proxy → "before_kib open_kib after_kib"
idle_round() { # PID PORT LABEL
  local pid=$1 p=$2 before open after
  before=$(kib "$pid" VmRSS)
  python3 bench/idle_conns.py 127.0.0.1 "$p" -n "$idle_conns" --hold 3 > "$dir/idle.out" 2> "$dir/idle.err" &
  local cpid=$!
  for _ in $(seq 600); do grep -q '^open' "$dir/idle.out" && break; sleep 0.1; done
  grep -q '^open' "$dir/idle.out" || { echo "bench: $3: the idle client did not open its connections in 60 s:" >&2; cat "$dir/idle.err" >&2; }
  sleep 1 # let the last answers' buffers settle
  open=$(kib "$pid" VmRSS)
  wait "$cpid" || { echo "bench: $3: idle client failed: $(cat "$dir/idle.out" "$dir/idle.err" | tr '\n' ' ')" >&2; }
  sleep 5
  after=$(kib "$pid" VmRSS)
  echo "$before $open $after $(awk '/^open/ { print $2 }' "$dir/idle.out")"
}

idle() {
  local name=idle-10k
  echo "== $name: $idle_conns idle keep-alive connections (bench/idle_conns.py), in-memory backends"
  # The connections sit idle for several seconds: both proxies get
  # HAProxy's effective keep-alive timeout (timeout client, 50 s) so that
  # neither closes them while they are counted.
  start_proxies "$m1" "$m2" 1 false $((idle_conns + 1000)) 50s
  : > "$dir/h"; : > "$dir/v"
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
      idle_round "$hpid" "$hp" HAProxy >> "$dir/h"; idle_round "$vpid" "$vp" vakt >> "$dir/v"
    else
      idle_round "$vpid" "$vp" vakt >> "$dir/v"; idle_round "$hpid" "$hp" HAProxy >> "$dir/h"
    fi
    echo "   round $r: haproxy $(tail -1 "$dir/h")   vakt $(tail -1 "$dir/v")   (RSS kB before, open, 5 s after close; connections)"
  done
  stop_proxies
  # Per connection: the first round, on a fresh process (later rounds reuse
  # what the allocator kept from the first, so they cost less RSS and would
  # hide the real cost). Before: before the first round; after: 5 s after
  # the last round closed.
  local hc vc
  hc=$(awk -v n="$idle_conns" 'NR == 1 { print ($2 - $1) / n }' "$dir/h")
  vc=$(awk -v n="$idle_conns" 'NR == 1 { print ($2 - $1) / n }' "$dir/v")
  local hb ha vb va
  hb=$(head -1 "$dir/h" | cut -d' ' -f1) ha=$(tail -1 "$dir/h" | cut -d' ' -f3)
  vb=$(head -1 "$dir/v" | cut -d' ' -f1) va=$(tail -1 "$dir/v" | cut -d' ' -f3)
  local short
  short=$(cat "$dir/h" "$dir/v" | awk -v n="$idle_conns" '$4 != n { s++ } END { print s + 0 }')
  local note=""
  [ "$short" = 0 ] || note=" ($short rounds with fewer connections open)"
  rows+=("$(awk -v hc="$hc" -v vc="$vc" -v note="$note" 'BEGIN {
    printf "idle-10k: RSS per idle connection (first round)||||%.1f KiB||||%.1f KiB|%.2f|≤ 2|%s%s",
      hc, vc, vc / hc, (vc <= 2 * hc) ? "yes" : "no", note }')")
  rows+=("$(awk -v hb="$hb" -v ha="$ha" -v vb="$vb" -v va="$va" -v r="$rounds" 'BEGIN {
    printf "idle-10k: RSS 5 s after the last of %d rounds closed, against before the first||||%.1f → %.1f MB||||%.1f → %.1f MB|vakt after/before %.2f (HAProxy %.2f)|≤ 1.5|%s",
      r, hb / 1024, ha / 1024, vb / 1024, va / 1024, va / vb, ha / hb, (va <= 1.5 * vb) ? "yes" : "no" }')")
}

for s in $scenarios; do
  case "$s" in
    ka-nginx) throughput ka-nginx nginx 64 1 false ;;
    ka-mem) throughput ka-mem mem 64 1 false ;;
    httpclose) throughput httpclose mem 64 1 true ;;
    client-close) throughput client-close mem 64 1 false -H 'Connection: close' ;;
    c1000) throughput c1000 mem 1000 1 false ;;
    idle-10k) idle ;;
    threads2) throughput threads2 mem 64 2 false ;;
    tls-ka) throughput tls-ka nginx 64 1 false ;;
    tls-handshake) throughput tls-handshake nginx 64 1 false -H 'Connection: close' ;;
    h2) throughput h2 nginx 64 1 false ;;
  esac
done

mkdir -p bench/out
{
  echo "$(date -u '+%F %H:%M') UTC · **$cores cores** · HAProxy $haproxy_version vs $vakt_label · wrk -t1 -d$duration · $rounds rounds, medians · RSS: peak (VmHWM) of each proxy over its scenario"
  echo
  echo "| scenario ($cores cores) | HAProxy req/s | p50 ms | p99 ms | RSS | vakt req/s | p50 ms | p99 ms | RSS | vakt / HAProxy | target | met |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
  for row in "${rows[@]}"; do echo "| ${row//|/ | } |"; done
} | tee bench/out/latest.md
