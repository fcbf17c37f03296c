#!/usr/bin/env python3
"""Idle keep-alive client for bench/run.sh's idle-10k scenario.

Opens N connections to HOST:PORT (at most --parallel connecting at once),
sends one HTTP/1.1 keep-alive GET on each and reads its whole answer, then
keeps every connection open and idle. It prints `open N` (flushed) once all
of them are, holds them for --hold seconds, prints how many the proxy closed
meanwhile, and closes them all. Exit 1 if any connection or answer failed:
a figure measured over fewer connections than asked would be wrong.

Loopback only: the host must be in 127.0.0.0/8.
"""

import argparse
import asyncio
import ipaddress
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: vakt-bench-idle\r\n\r\n"


async def one(host, port, gate):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"answer {status.decode(errors='replace')}, expected 200")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            raise RuntimeError("answer without Content-Length (keep-alive needs one here)")
        await reader.readexactly(length)
        return reader, writer


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=200)
    ap.add_argument("--hold", type=float, default=3.0)
    a = ap.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        sys.exit(f"idle_conns: {a.host} is not a loopback address; use 127.0.0.1")

    gate = asyncio.Semaphore(a.parallel)
    results = await asyncio.gather(
        *(one(a.host, a.port, gate) for _ in range(a.conns)), return_exceptions=True
    )
    conns = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(
            f"idle_conns: {len(errors)} of {a.conns} connections failed, first: {errors[0]!r} "
            "(check ulimit -n and the proxies' maxconn)",
            file=sys.stderr,
        )
    print(f"open {len(conns)}", flush=True)
    await asyncio.sleep(a.hold)
    # A connection the proxy closed while idle has seen EOF by now.
    early = sum(1 for reader, _ in conns if reader.at_eof())
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    print(f"closed {len(conns)} early {early}", flush=True)
    return 1 if errors or early else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
