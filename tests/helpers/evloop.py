#!/usr/bin/env python3
"""Python programs for tests/preload_evloop.bats: an asyncio event loop that
opens many connections at once, and plain sockets of one family reaching a
proxy of the other. Bodies are fetched with HTTP/1.0 GET and reported as
their sha256.

usage:
  evloop.py asyncio N HOST PORT PATH
      N fetches at once on one asyncio loop (asyncio.open_connection).
      Prints three lines: "K ok" (K: answers with status 200), the sha256
      shared by every body (or "bodies differ"), and the wall time of the
      N fetches in ms (interpreter start-up not counted).
  evloop.py get HOST PORT PATH
      socket.create_connection((HOST, PORT)), GET; prints the body's sha256.
  evloop.py v6only HOST PORT PATH
      AF_INET6 socket with IPV6_V6ONLY=1, connect((HOST, PORT)), GET;
      prints the body's sha256, then "v6only=N" as read back after connect()
      (or "v6only: ERRNO" when the socket no longer takes the option).
"""
import asyncio
import errno
import hashlib
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from progs import read_all, request  # noqa: E402

TIMEOUT_S = 20


def split(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    return status.split(b" ")[1:2] == [b"200"], body


async def fetch_async(host, port, path):
    r, w = await asyncio.open_connection(host, port)
    w.write(request(host, path))
    data = await r.read()
    w.close()
    return split(data)


async def many(n, host, port, path):
    t0 = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(fetch_async(host, port, path) for _ in range(n)),
                       return_exceptions=True), TIMEOUT_S)
    ms = (time.monotonic() - t0) * 1000
    ok = [r for r in results if isinstance(r, tuple) and r[0]]
    errors = [r for r in results if isinstance(r, BaseException)]
    for e in errors[:3]:
        print("error: %r" % (e,), file=sys.stderr)
    shas = {hashlib.sha256(body).hexdigest() for _, body in ok}
    print("%d ok" % len(ok))
    print(shas.pop() if len(shas) == 1 else "bodies differ")
    print("%d" % ms)


def main():
    op = sys.argv[1]
    if op == "asyncio":
        n, host, port, path = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
        asyncio.run(many(n, host, port, path))
    elif op == "get":
        host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        with socket.create_connection((host, port), TIMEOUT_S) as s:
            s.sendall(request(host, path))
            ok, body = split(read_all(s))
        print(hashlib.sha256(body).hexdigest() if ok else "status not 200")
    elif op == "v6only":
        host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.settimeout(TIMEOUT_S)
            s.connect((host, port))
            try:
                v6only = "v6only=%d" % s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            except OSError as e:
                v6only = "v6only: " + errno.errorcode.get(e.errno, str(e.errno))
            s.sendall(request("[%s]" % host, path))
            ok, body = split(read_all(s))
        print(hashlib.sha256(body).hexdigest() if ok else "status not 200")
        print(v6only)
    else:
        sys.exit("unknown op " + op)


if __name__ == "__main__":
    main()
