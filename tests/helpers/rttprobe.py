#!/usr/bin/env python3
"""Time from connect() to the first byte of the target's answer (make
bench's round-trip figure, scripts/bench_rtt.sh); the target an echo
server (tests/bench/connbench echo) or an HTTP one.

usage: rttprobe.py MODE N TARGETPORT [PROXYPORT [USER PASS | SECONDPORT]]
  inprog  speaks SOCKS5 itself to 127.0.0.1:PROXYPORT, lock-step as every
          client does: greeting, wait, (RFC 1929, wait,) request, wait;
          then the GET, and the first byte of the answer
  inprog2 the same through a chain: PROXYPORT, then 127.0.0.1:SECONDPORT
          (greeting, request to the second hop, greeting, request)
  plain   a plain connect() to 127.0.0.1:TARGETPORT (a preload library
          under test tunnels it), then the GET and the first byte
Prints "ms p50=X min=Y max=Z" over N rounds (each a new connection); exits
1 when a round got neither "HTTP/" nor the echo of "GET /" back.
"""
import socket
import statistics
import struct
import sys
import time


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise OSError("closed")
        b += c
    return b


def socks_reply(s):
    h = recv_exact(s, 5)
    if h[1] != 0:
        raise OSError("reply %d" % h[1])
    left = {1: 4 + 2 - 1, 4: 16 + 2 - 1, 3: h[4] + 2}[h[3]]
    recv_exact(s, left)


def lockstep(s, port):
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2)[1] != 0:
        raise OSError("method")
    s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", port))
    socks_reply(s)


def one(mode, tport, pport, user, pw):
    t0 = time.monotonic()
    if mode == "inprog2":
        s = socket.create_connection(("127.0.0.1", pport))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lockstep(s, int(user))
        lockstep(s, tport)
    elif mode == "inprog":
        s = socket.create_connection(("127.0.0.1", pport))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"\x05\x01" + (b"\x02" if user else b"\x00"))
        if recv_exact(s, 2)[1] != (2 if user else 0):
            raise OSError("method")
        if user:
            u, p = user.encode(), pw.encode()
            s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
            if recv_exact(s, 2)[1] != 0:
                raise OSError("auth")
        s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", tport))
        socks_reply(s)
    else:
        s = socket.create_connection(("127.0.0.1", tport))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
    first = s.recv(5)
    ms = (time.monotonic() - t0) * 1000
    s.close()
    if not first or not (b"HTTP/".startswith(first) or b"GET /".startswith(first)):
        raise OSError("no answer")
    return ms


def main():
    mode, n, tport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pport = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    user = sys.argv[5] if len(sys.argv) > 5 else None
    pw = sys.argv[6] if len(sys.argv) > 6 else None
    t = [one(mode, tport, pport, user, pw) for _ in range(n)]
    print("ms p50=%.1f min=%.1f max=%.1f" % (statistics.median(t), min(t), max(t)))


if __name__ == "__main__":
    main()
