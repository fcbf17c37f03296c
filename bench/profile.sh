#!/usr/bin/env bash
# Where vakt spends its time and memory against HAProxy (the evidence behind
# bench/PROFILE.md). Same backends and listener as bench/run.sh, one worker
# thread each, loopback only. Writes its findings under bench/out/profile/.
#
# Usage: bench/profile.sh [--vakt PATH] [--duration 3s] [--step NAME]...
#
# Steps (default: all):
#   strace  `strace -c -f` on each proxy during a wrk run, keep-alive and
#           `Connection: close` clients: syscalls per request, per syscall
#   ctx     context switches and threads' CPU time per request (from /proc),
#           keep-alive and `Connection: close` clients
#   perf    `perf record -g` on each proxy during a keep-alive wrk run;
#           flat and call-graph reports
#   trim    opens idle connections on vakt, closes them, then asks glibc's
#           malloc to give free memory back (malloc_trim through gdb): how
#           much of the RSS left after a burst is free heap kept by malloc
#   heap    vakt under heaptrack while 2,000 idle connections are open: which
#           allocation sites hold the bytes of an idle connection
#
# perf, trim and heap need a vakt with symbols; build one in a target dir of
# its own (the release build stays as it is) and pass it with --vakt. Like
# the release binary (static, thin LTO), for perf and trim:
#   CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C force-frame-pointers=yes" \
#   cargo build --release -p vakt --target-dir target/prof
#   bench/profile.sh --step strace,perf,trim --vakt target/prof/x86_64-unknown-linux-gnu/release/vakt
# heaptrack (like valgrind) cannot hook malloc in a static binary: for heap,
# a dynamically linked one (RUSTFLAGS replaces the config's crt-static):
#   CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#   CARGO_PROFILE_RELEASE_LTO=false RUSTFLAGS="-C force-frame-pointers=yes" \
#   cargo build --release -p vakt --target-dir target/prof-dyn
#   bench/profile.sh --step heap --vakt target/prof-dyn/x86_64-unknown-linux-gnu/release/vakt
set -euo pipefail
cd "$(dirname "$0")/.."

all_steps="strace ctx perf trim heap"
duration=3s vakt="" picked=""
die() { echo "bench/profile: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --vakt) [ $# -ge 2 ] || die "--vakt needs the path of a vakt binary"; vakt=$2; shift 2 ;;
    --duration) [ $# -ge 2 ] || die "--duration needs a value such as 3s"; duration=$2; shift 2 ;;
    --step) [ $# -ge 2 ] || die "--step needs a name (one of: $all_steps)"; picked="$picked ${2//,/ }"; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (bench/profile.sh --help lists them)" ;;
  esac
done
[[ "$duration" =~ ^[1-9][0-9]*s$ ]] || die "--duration $duration: give whole seconds such as 3s"
steps=""
for s in ${picked:-$all_steps}; do
  case " $all_steps " in
    *" $s "*) steps="$steps $s" ;;
    *) die "--step $s: unknown step; pick one of: $all_steps" ;;
  esac
done
has() { case " $steps " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

tools="haproxy wrk python3 curl"
has strace && tools="$tools strace"
has perf && tools="$tools perf"
has trim && tools="$tools gdb"
has heap && tools="$tools heaptrack heaptrack_print readelf ss"
for tool in $tools; do
  command -v "$tool" >/dev/null || { echo "bench/profile: $tool is missing: apt-get install -y ${tool/perf/linux-perf}" >&2; exit 1; }
done
if [ -z "$vakt" ]; then
  cargo build --release --quiet
  vakt=target/x86_64-unknown-linux-gnu/release/vakt
fi
[ -x "$vakt" ] || die "--vakt $vakt: not an executable file; give the path of a vakt binary"
vakt=$(realpath "$vakt")
if { has perf || has trim || has heap; } && ! nm "$vakt" 2>/dev/null | grep -c 'vakt_runtime' >/dev/null; then
  die "$vakt has no symbols: perf, trim and heap need them (see the build commands in bench/profile.sh --help)"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=bench/out/profile
mkdir -p "$out"

. bench/lib.sh
start_mem_backends
secs=${duration%s}

# Requests a wrk run completed.
wrk_requests() { awk '/requests in/ { print $1 }'; }

if has strace; then
  start_proxies "$m1" "$m2" 1 false 4000 10s
  for mode in keep-alive close; do
    extra=()
    [ "$mode" = close ] && extra=(-H 'Connection: close')
    for proxy in haproxy vakt; do
      pid=$hpid p=$hp
      [ "$proxy" = vakt ] && pid=$vpid p=$vp
      # -f with -p attaches every thread of the process.
      strace -c -f -qq -p "$pid" -o "$out/strace-$proxy-$mode.txt" & spid=$!
      sleep 1
      n=$(wrk -t1 -c64 -d"$duration" "${extra[@]}" "http://127.0.0.1:$p/" | wrk_requests)
      kill -INT "$spid"; wait "$spid" 2>/dev/null || true
      echo "$n" > "$out/strace-$proxy-$mode.requests"
    done
  done
  stop_proxies
  # Syscalls per request, per syscall, both proxies side by side.
  for mode in keep-alive close; do
    echo "## strace -c -f, wrk -t1 -c64 -d$duration, $mode clients: calls per request"
    echo
    echo "| syscall | HAProxy | vakt |"
    echo "|---|---:|---:|"
    awk -v hn="$(cat "$out/strace-haproxy-$mode.requests")" -v vn="$(cat "$out/strace-vakt-$mode.requests")" '
      FNR == 1 { who = (FILENAME ~ /haproxy/) ? "h" : "v" }
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
        name = $NF
        c[name, who] += $4; names[name] = 1; tot[who] += $4
        if (NF == 6) { e[name, who] += $5; etot[who] += $5 }
      }
      function cell(n, err, req) { return sprintf(err ? "%.3f (%.3f failed)" : "%.3f", n / req, err / req) }
      END {
        for (s in names)
          printf "%s|%s|%s|%.4f\n", s, cell(c[s, "h"], e[s, "h"], hn), cell(c[s, "v"], e[s, "v"], vn), c[s, "h"] / hn + c[s, "v"] / vn
        printf "**total**|%s|%s|1000\n", cell(tot["h"], etot["h"], hn), cell(tot["v"], etot["v"], vn)
      }' "$out/strace-haproxy-$mode.txt" "$out/strace-vakt-$mode.txt" |
      sort -t'|' -k4,4nr | awk -F'|' '$4 >= 0.002 { printf "| %s | %s | %s |\n", $1, $2, $3 }'
    echo
    echo "(requests under strace: HAProxy $(cat "$out/strace-haproxy-$mode.requests"), vakt $(cat "$out/strace-vakt-$mode.requests"))"
    echo
  done | tee "$out/strace.md"
fi

if has ctx; then
  # Voluntary + involuntary context switches and utime + stime of every
  # thread of a process, summed.
  ctx_total() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
  cpu_ticks() { cat /proc/"$1"/task/*/stat | awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s }'; }
  start_proxies "$m1" "$m2" 1 false 4000 10s
  hz=$(getconf CLK_TCK)
  {
    echo "## context switches and CPU per request, wrk -t1 -c64 -d$duration, one worker thread each"
    echo
    echo "| clients | proxy | requests | context switches / request | CPU µs / request (utime + stime) |"
    echo "|---|---|---:|---:|---:|"
    for mode in keep-alive close; do
      extra=()
      [ "$mode" = close ] && extra=(-H 'Connection: close')
      for proxy in haproxy vakt; do
        pid=$hpid p=$hp
        [ "$proxy" = vakt ] && pid=$vpid p=$vp
        c0=$(ctx_total "$pid") t0=$(cpu_ticks "$pid")
        n=$(wrk -t1 -c64 -d"$duration" "${extra[@]}" "http://127.0.0.1:$p/" | wrk_requests)
        c1=$(ctx_total "$pid") t1=$(cpu_ticks "$pid")
        awk -v m="$mode" -v p="$proxy" -v n="$n" -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v hz="$hz" \
          'BEGIN { printf "| %s | %s | %d | %.3f | %.1f |\n", m, p, n, c / n, t / hz * 1e6 / n }'
      done
    done
  } | tee "$out/ctx.md"
  stop_proxies
fi

if has perf; then
  start_proxies "$m1" "$m2" 1 false 4000 10s
  for proxy in haproxy vakt; do
    pid=$hpid p=$hp
    [ "$proxy" = vakt ] && pid=$vpid p=$vp
    # cycles is not available in most containers; perf falls back to
    # cpu-clock. The recording window covers the whole wrk run (perf needs
    # a moment to attach under load); the idle margins cost no samples.
    perf record -g -p "$pid" -o "$out/perf-$proxy.data" -- sleep $((secs + 3)) >"$dir/perf-$proxy.log" 2>&1 &
    rpid=$!
    sleep 1.5
    wrk -t1 -c64 -d"$duration" "http://127.0.0.1:$p/" | wrk_requests > "$out/perf-$proxy.requests"
    wait "$rpid" || { echo "bench/profile: perf record on $proxy failed:"; cat "$dir/perf-$proxy.log"; } >&2
    perf report -i "$out/perf-$proxy.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 2>/dev/null |
      grep -v '^$' | grep -E '^ +[0-9]' > "$out/perf-$proxy-flat.txt" || true
    perf report -i "$out/perf-$proxy.data" --stdio --children --sort symbol --percent-limit 3 -g none 2>/dev/null |
      grep -E '^ +[0-9]' > "$out/perf-$proxy-children.txt" || true
  done
  stop_proxies
  # cpu-clock periods are nanoseconds: CPU time per request, per part.
  cpu_per_req() { # PROXY → "dso µs" lines
    perf report -i "$out/perf-$1.data" --stdio --no-children -F period,dso -g none 2>/dev/null |
      awk -v n="$(cat "$out/perf-$1.requests")" '/^ +[0-9]/ { printf "%s %.2f\n", $2, $1 / 1000 / n }'
  }
  # vakt's own user time by component (symbol prefixes).
  by_component() {
    perf report -i "$out/perf-vakt.data" --stdio --no-children -F period,sym --dsos vakt -g none 2>/dev/null |
      awk -v n="$(cat "$out/perf-vakt.requests")" '/^ +[0-9]/ {
        s = $0; sub(/^ +[0-9]+ +\[\.\] /, "", s); c = "other (std, core, closures)"
        if (s ~ /hyper::/) c = "hyper"
        else if (s ~ /tokio::|mio::/) c = "tokio + mio"
        else if (s ~ /vakt_runtime::/) c = "vakt_runtime"
        else if (s ~ /malloc|free|_int_|cfree|realloc/) c = "glibc malloc/free"
        else if (s ~ /mem(move|cpy|set|cmp|chr)|str(len|cmp)/) c = "memmove/memcpy/memchr"
        else if (s ~ /http::|httparse|bytes::/) c = "http + httparse + bytes"
        else if (s ~ /^(__)?(libc_)?(send|recv|writev|epoll|clock|syscall)/) c = "libc syscall stubs"
        t[c] += $1 } END { for (c in t) printf "%.2f|%s\n", t[c] / 1000 / n, c }' | sort -t'|' -k1,1nr
  }
  {
    echo "## perf record -g (cpu-clock), wrk -t1 -c64 -d$duration keep-alive: CPU µs per request"
    echo
    echo "requests in the window: HAProxy $(cat "$out/perf-haproxy.requests"), vakt $(cat "$out/perf-vakt.requests")"
    echo
    echo "| where | HAProxy | vakt |"
    echo "|---|---:|---:|"
    join -a1 -a2 -e - -o 0,1.2,2.2 <(cpu_per_req haproxy | sort) <(cpu_per_req vakt | sort) |
      awk '{ printf "| %s | %s | %s |\n", $1, $2, $3; h += $2; v += $3 } END { printf "| **total** | %.2f | %.2f |\n", h, v }'
    echo
    echo "vakt's user time by component (µs per request):"
    echo
    echo "| component | µs/request |"
    echo "|---|---:|"
    by_component | awk -F'|' '{ printf "| %s | %s |\n", $2, $1 }'
    echo
    for proxy in haproxy vakt; do
      echo "top self-time symbols, $proxy:"
      echo '```'
      perf report -i "$out/perf-$proxy.data" --stdio --no-children --sort dso,sym --percent-limit 0.7 -g none 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-150 | head -30
      echo '```'
    done
  } | tee "$out/perf.md"
fi

idle_open() { # PORT N HOLD → runs the idle client in the background, waits until open
  python3 bench/idle_conns.py 127.0.0.1 "$1" -n "$2" --hold "$3" > "$dir/idle.out" 2> "$dir/idle.err" & ipid=$!
  for _ in $(seq 600); do grep -q '^open' "$dir/idle.out" && return 0; sleep 0.1; done
  echo "bench/profile: the idle client did not open its connections: $(cat "$dir/idle.err")" >&2; exit 1
}

if has trim; then
  start_proxies "$m1" "$m2" 1 false 11000 50s
  {
    echo "== trim: vakt VmRSS (kB) around 10,000 idle connections"
    echo "before: $(kib "$vpid" VmRSS)"
    idle_open "$vp" 10000 2
    echo "open:   $(kib "$vpid" VmRSS)"
    wait "$ipid" || true
    sleep 5
    echo "5 s after close: $(kib "$vpid" VmRSS)"
    gdb -p "$vpid" -batch -ex 'call (void) malloc_stats()' -ex 'call (int) malloc_trim(0)' >/dev/null 2>"$dir/gdb.err" || true
    sleep 1
    echo "after malloc_trim(0): $(kib "$vpid" VmRSS)"
    echo "-- malloc_stats() before the trim (vakt's stderr):"
    grep -E 'Arena|system bytes|in use bytes' "$dir/vakt.log" || true
  } | tee "$out/trim.txt"
  stop_proxies
fi

if has heap; then
  # heaptrack hooks malloc through LD_PRELOAD: a dynamically linked vakt.
  readelf -d "$vakt" 2>/dev/null | grep -c NEEDED >/dev/null ||
    die "heap: $vakt is statically linked; heaptrack needs a dynamic build (see bench/profile.sh --help)"
  write_configs "$m1" "$m2" 1 false 4000 120s
  rm -f "$out"/heaptrack.*
  heaptrack -o "$out/heaptrack" "$vakt" proxy --config "$dir/vakt.toml" >"$dir/heaptrack.log" 2>&1 & htpid=$!; pids+=($htpid)
  wait_port "$vp" "vakt under heaptrack" "$dir/heaptrack.log"
  hvpid=$(ss -ltnpH "sport = :$vp" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  idle_open "$vp" 2000 3
  wait "$ipid" || true
  kill -TERM "$hvpid"
  wait "$htpid" || true # heaptrack writes its file once vakt has ended
  {
    echo "## heaptrack: what vakt's heap holds at its peak, 2,000 idle keep-alive connections open"
    echo
    heaptrack_print -f "$(ls "$out"/heaptrack.* | head -1)" -p -m 0 -n 25 -a 0 -T 0 -l 0 2>/dev/null |
      python3 bench/heap_top.py 2000
  } | tee "$out/heap.txt"
fi
