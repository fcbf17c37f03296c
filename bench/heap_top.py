#!/usr/bin/env python3
"""Summarises `heaptrack_print -p -m 0` output for bench/profile.sh: each
backtrace that held memory at the heap's peak, as bytes in all, bytes per
connection (N connections were open at the peak), calls, and the first
frames that say why (hyper, tokio, bytes, vakt), not how (alloc, core, std).

Usage: heaptrack_print -f FILE -p -m 0 -n 25 -a 0 -T 0 -l 0 | heap_top.py N
"""

import re
import sys

UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}
HEAD = re.compile(r"^([0-9.]+)([KMG]?)B? peak memory consumed over (\d+) calls from")
WHY = re.compile(r"(hyper-[0-9.]+|tokio-[0-9.]+|bytes-[0-9.]+|http-[0-9.]+|runtime/src|cli/src)/(\S+)")


def entries(lines):
    cur = None
    func = None
    for line in lines:
        m = HEAD.match(line)
        if m:
            if cur:
                yield cur
            size = float(m.group(1)) * UNITS[m.group(2)]
            cur = {"size": size, "calls": int(m.group(3)), "frames": []}
            continue
        if cur is None:
            continue
        if line.startswith("    at "):
            w = WHY.search(line)
            if w and func:
                crate = w.group(1).split("-")[0] if "-" in w.group(1) else w.group(1)
                where = w.group(2).rsplit("/", 1)[-1]
                cur["frames"].append(f"{func} ({crate} {where})")
        elif line.startswith("  ") and not line.startswith("    "):
            func = line.strip()
    if cur:
        yield cur


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    conns = int(sys.argv[1])
    lines = sys.stdin.read().splitlines()
    total = next((l for l in lines if l.startswith("peak heap memory consumption")), "")
    print(f"{total.strip()} with {conns} idle connections open")
    print()
    print("| bytes/conn | calls | allocated by (innermost first) |")
    print("|---:|---:|---|")
    for e in entries(lines):
        if e["size"] / conns < 8:
            continue
        frames = " ← ".join(f"`{f}`" for f in e["frames"][:3]) or "(no hyper/tokio/vakt frame)"
        print(f"| {e['size'] / conns:.0f} | {e['calls']} | {frames} |")


if __name__ == "__main__":
    main()
