#!/usr/bin/env python3
"""A TCP target on loopback for the interop and load tests (asyncio).

usage: echod.py HOST PORTFILE [first RESULTFILE]
Binds HOST (127.0.0.1 or ::1) on an ephemeral port, writes the port to
PORTFILE once listening, and serves until it is killed.

Default mode, echo: every byte a connection sends comes back; when the
peer half-closes, the echo finishes and this side half-closes in turn
(so a client that shuts down its write side first still gets all of it).

Mode "first": the target speaks first and half-closes first. Each
connection gets FIRST_BYTES bytes of a fixed pattern and then FIN; the
target then keeps reading until the peer's FIN and appends
"got COUNT SHA256" for what it received to RESULTFILE.
"""
import asyncio
import hashlib
import os
import sys

FIRST_BYTES = 200000
CHUNK = 65536
# Many clients connect at once in the load test: the kernel's queue of
# not-yet-accepted connections must hold them all (asyncio's default is 100).
BACKLOG = 4096


def pattern(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


async def echo(reader, writer):
    try:
        while True:
            b = await reader.read(CHUNK)
            if not b:
                break
            writer.write(b)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def first(reader, writer, result):
    n, h = 0, hashlib.sha256()
    try:
        writer.write(pattern(FIRST_BYTES))
        await writer.drain()
        writer.write_eof()
        while True:
            b = await reader.read(CHUNK)
            if not b:
                break
            n += len(b)
            h.update(b)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    with open(result, "a") as f:
        f.write("got %d %s\n" % (n, h.hexdigest()))


async def serve_announced(srv, portfile):
    """Writes the port srv listens on to portfile (by a rename, so that a
    reader never sees half of it), then serves until killed."""
    port = srv.sockets[0].getsockname()[1]
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, portfile)
    async with srv:
        await srv.serve_forever()


async def main():
    host, portfile = sys.argv[1:3]
    if len(sys.argv) > 3 and sys.argv[3] == "first":
        result = sys.argv[4]

        async def handler(r, w):
            await first(r, w, result)
    else:
        handler = echo
    srv = await asyncio.start_server(handler, host, 0, backlog=BACKLOG)
    await serve_announced(srv, portfile)


if __name__ == "__main__":
    asyncio.run(main())
