#!/usr/bin/env python3
"""A raw SOCKS5 (RFC 1928, no authentication) test client, asyncio.

usage: s5client.py PROXYPORT TARGETPORT MODE [ARGS]
The proxy is 127.0.0.1:PROXYPORT, the target 127.0.0.1:TARGETPORT.

  load N SIZE     N sessions at once, to an echo target (echod.py). All N
                  handshakes complete before any payload moves, so N
                  sessions are open at the same time; then each sends its
                  own SIZE random bytes, shuts down its write side and reads
                  the echo to EOF. Prints "N ok" when every echo matches.
  client-first SIZE
                  one session to an echo target: SIZE random bytes, then
                  FIN from the client; the whole echo must still arrive.
                  Prints "echo ok SIZE".
  target-first SIZE
                  one session to echod.py's "first" mode: read the target's
                  bytes up to its FIN, then send SIZE random bytes and FIN.
                  Prints "target N SHA" for what came from the target and
                  "sent SIZE SHA" for what was sent.
Exits 1 with a reason on stderr on any mismatch, error or timeout.
"""
import asyncio
import hashlib
import os
import socket
import sys

TIMEOUT_S = 100		# the whole run; the bats caller bounds it too
CHUNK = 65536


class Fail(Exception):
    pass


async def s5_connect(pport, tport):
    r, w = await asyncio.open_connection("127.0.0.1", pport)
    # RFC 1928 §3: one method offered, X'00' (no authentication).
    w.write(b"\x05\x01\x00")
    m = await r.readexactly(2)
    if m != b"\x05\x00":
        raise Fail("method reply %s" % m.hex())
    # §4: CONNECT, ATYP IPv4.
    w.write(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + tport.to_bytes(2, "big"))
    head = await r.readexactly(4)
    if head[:2] != b"\x05\x00":
        raise Fail("reply %s" % head.hex())
    # §6: BND.ADDR by its type, then BND.PORT.
    alen = {1: 4, 4: 16}.get(head[3])
    if alen is None:
        raise Fail("reply ATYP %d" % head[3])
    await r.readexactly(alen + 2)
    return r, w


async def read_all(r):
    got = bytearray()
    while True:
        b = await r.read(CHUNK)
        if not b:
            return bytes(got)
        got += b


async def exchange(r, w, data):
    """Send data and FIN while reading to EOF; returns what was read."""
    reader = asyncio.ensure_future(read_all(r))
    w.write(data)
    await w.drain()
    w.write_eof()
    got = await reader
    w.close()
    return got


async def load(pport, tport, n, size):
    up = 0
    all_up = asyncio.Event()
    ok = 0

    async def one(i):
        nonlocal up, ok
        r, w = await s5_connect(pport, tport)
        up += 1
        if up == n:
            all_up.set()
        await all_up.wait()
        data = os.urandom(size)
        got = await exchange(r, w, data)
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            raise Fail("session %d: %d bytes back of %d, or different" % (i, len(got), size))
        ok += 1

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT_S)
    except asyncio.TimeoutError:
        raise Fail("timed out: %d of %d handshakes, %d of %d echoes ok" % (up, n, ok, n))
    finally:
        for t in tasks:
            t.cancel()
    print("%d ok" % ok)


async def client_first(pport, tport, size):
    r, w = await s5_connect(pport, tport)
    data = os.urandom(size)
    got = await exchange(r, w, data)
    if got != data:
        raise Fail("echo after client FIN: %d bytes of %d, or different" % (len(got), size))
    print("echo ok %d" % size)


async def target_first(pport, tport, size):
    r, w = await s5_connect(pport, tport)
    # The target's bytes and its FIN come first; the client has sent nothing.
    got = await read_all(r)
    print("target %d %s" % (len(got), hashlib.sha256(got).hexdigest()))
    # Our direction is still open: it must carry this to the target.
    data = os.urandom(size)
    w.write(data)
    await w.drain()
    w.write_eof()
    rest = await read_all(r)
    if rest:
        raise Fail("%d bytes after EOF" % len(rest))
    w.close()
    print("sent %d %s" % (size, hashlib.sha256(data).hexdigest()))


def main():
    pport, tport, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    args = [int(a) for a in sys.argv[4:]]
    run = {"load": load, "client-first": client_first, "target-first": target_first}[mode]
    try:
        asyncio.run(asyncio.wait_for(run(pport, tport, *args), TIMEOUT_S + 5))
    except (Fail, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        print("s5client: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
