#!/usr/bin/env python3
"""The event-loop figure of make bench (scripts/bench_evloop.sh), Python's side.

usage: evloop.py serve FILE PORTFILE
       evloop.py fetch -t HOST:PORT -p PATH -n N -l LEN -s SHA256 [-x HOST:PORT] [-T SECONDS]

serve: an asyncio HTTP/1.0 server on 127.0.0.1, an ephemeral port (written to
PORTFILE once listening): FILE's bytes for any GET, then a FIN. One thread is
plenty for the 50 requests at once the figure makes, and the backlog takes
them all, so that no SYN waits for a retransmission.

fetch: N concurrent GETs of PATH from the target HOST:PORT on one asyncio
loop, each on a fresh connection. With -x, each speaks SOCKS5 (RFC 1928, no
authentication, CONNECT to the target's IPv4 address) to that proxy first;
without, it connects straight to the target (under libsocksify.so, the
library tunnels that connect). Every body must be LEN bytes with sha256
SHA256. Prints one line on stdout,
    evloop: ok n=N ms=WALL
where WALL is the time from the first connect to the last byte of the last
body (no interpreter start-up), or
    evloop: failed: WHY
and exits 1. -T bounds the whole of it (default 30 s).
"""
import argparse
import asyncio
import hashlib
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import echod  # noqa: E402  tests/helpers/echod.py

REQUEST_MAX_BYTES = 8192        # an HTTP request head the server reads at most
REQUEST_TIMEOUT_S = 10          # per request, on the server
LISTEN_BACKLOG = 1024

# RFC 1928 values.
S5_VERSION = 0x05
S5_METHOD_NONE = 0x00
S5_CMD_CONNECT = 0x01
S5_ATYP_IPV4 = 0x01
S5_ATYP_DOMAIN = 0x03
S5_ATYP_IPV6 = 0x04
S5_REP_SUCCEEDED = 0x00


def hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


# --- serve -------------------------------------------------------------------

async def serve(path, portfile):
    with open(path, "rb") as f:
        body = f.read()
    head = ("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode()

    async def answer(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            writer.write(head + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=LISTEN_BACKLOG,
                                     limit=REQUEST_MAX_BYTES)
    await echod.serve_announced(srv, portfile)


# --- fetch -------------------------------------------------------------------

async def socks5_connect(reader, writer, host, port):
    """RFC 1928 §3-§6: no-auth greeting, then CONNECT to an IPv4 address."""
    writer.write(bytes([S5_VERSION, 1, S5_METHOD_NONE]))
    reply = await reader.readexactly(2)
    if reply != bytes([S5_VERSION, S5_METHOD_NONE]):
        raise RuntimeError("SOCKS5 method reply %s" % reply.hex())
    writer.write(bytes([S5_VERSION, S5_CMD_CONNECT, 0, S5_ATYP_IPV4]) +
                 socket.inet_aton(host) + port.to_bytes(2, "big"))
    head = await reader.readexactly(4)
    if head[0] != S5_VERSION or head[1] != S5_REP_SUCCEEDED:
        raise RuntimeError("SOCKS5 reply %s" % head.hex())
    # BND.ADDR and BND.PORT follow; their length depends on ATYP.
    if head[3] == S5_ATYP_IPV4:
        await reader.readexactly(4 + 2)
    elif head[3] == S5_ATYP_IPV6:
        await reader.readexactly(16 + 2)
    elif head[3] == S5_ATYP_DOMAIN:
        n = (await reader.readexactly(1))[0]
        await reader.readexactly(n + 2)
    else:
        raise RuntimeError("SOCKS5 reply ATYP %d" % head[3])


async def fetch_one(args, i):
    thost, tport = hostport(args.t)
    chost, cport = hostport(args.x) if args.x else (thost, tport)
    reader, writer = await asyncio.open_connection(chost, cport)
    try:
        if args.x:
            await socks5_connect(reader, writer, thost, tport)
        writer.write(("GET %s?n=%d HTTP/1.0\r\nHost: %s\r\n\r\n" % (args.p, i, args.t)).encode())
        data = await reader.read()      # to EOF: HTTP/1.0 ends the body so
    finally:
        writer.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not sep or not status.startswith(b"HTTP/1.") or status.split()[1:2] != [b"200"]:
        raise RuntimeError("fetch %d: bad response head %r" % (i, status[:60]))
    if len(body) != args.l:
        raise RuntimeError("fetch %d: %d body bytes, not %d" % (i, len(body), args.l))
    if hashlib.sha256(body).hexdigest() != args.s:
        raise RuntimeError("fetch %d: body sha256 differs" % i)


async def fetch(args):
    t0 = time.perf_counter()
    results = await asyncio.gather(*(fetch_one(args, i) for i in range(args.n)),
                                   return_exceptions=True)
    ms = (time.perf_counter() - t0) * 1000
    bad = [r for r in results if isinstance(r, BaseException)]
    if bad:
        return "failed: %d of %d fetches failed, first: %s" % (
            len(bad), args.n, (str(bad[0]) or type(bad[0]).__name__)[:120])
    return "ok n=%d ms=%.1f" % (args.n, ms)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "serve" and len(sys.argv) == 4:
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
        return 0
    if len(sys.argv) < 2 or sys.argv[1] != "fetch":
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(prog="evloop.py fetch")
    ap.add_argument("-t", required=True)
    ap.add_argument("-p", required=True)
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("-l", type=int, required=True)
    ap.add_argument("-s", required=True)
    ap.add_argument("-x")
    ap.add_argument("-T", type=float, default=30)
    args = ap.parse_args(sys.argv[2:])

    async def bounded():
        try:
            return await asyncio.wait_for(fetch(args), args.T)
        except asyncio.TimeoutError:
            return "failed: not done after %g s" % args.T

    line = asyncio.run(bounded())
    print("evloop: " + line, flush=True)
    return 0 if line.startswith("ok ") else 1


if __name__ == "__main__":
    sys.exit(main())
