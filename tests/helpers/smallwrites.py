#!/usr/bin/env python3
"""Small writes through a SOCKS5 proxy, both ways: does the relay hold any back?

usage: smallwrites.py PROXYPORT ROUNDS
Starts a target on 127.0.0.1, connects to it through the SOCKS5 proxy on
127.0.0.1:PROXYPORT (no authentication) and runs ROUNDS exchanges each way
in which one side writes two 1-byte segments and the other answers only
when it has both. A relay socket with Nagle's algorithm on holds the second
byte until the first is acknowledged, and the receiver, with nothing to
say yet, delays that ACK (40 ms on Linux): seconds over a hundred rounds,
where a relay that adds no delay takes milliseconds. Prints
"down_ms=N up_ms=N" (down: the target writes twice; up: the client does).
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rttprobe import recv_exact  # noqa: E402


def target(lst, rounds):
    c, _ = lst.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(rounds):		# down: one byte in, two writes out
        recv_exact(c, 1)
        c.send(b"x")
        time.sleep(0.001)	# two segments at the relay, not one
        c.send(b"y")
    for _ in range(rounds):		# up: two bytes in, one out
        recv_exact(c, 2)
        c.send(b"k")
    c.close()


def main():
    port, rounds = int(sys.argv[1]), int(sys.argv[2])
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    t = threading.Thread(target=target, args=(lst, rounds), daemon=True)
    t.start()
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        raise SystemExit("smallwrites: the proxy wants authentication")
    s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", lst.getsockname()[1]))
    rep = recv_exact(s, 10)
    if rep[1] != 0:
        raise SystemExit("smallwrites: reply %d" % rep[1])
    s.settimeout(30)
    t0 = time.monotonic()
    for _ in range(rounds):
        s.send(b"q")
        if recv_exact(s, 2) != b"xy":
            raise SystemExit("smallwrites: wrong bytes down")
    t1 = time.monotonic()
    for _ in range(rounds):
        s.send(b"a")
        time.sleep(0.001)
        s.send(b"b")
        if recv_exact(s, 1) != b"k":
            raise SystemExit("smallwrites: wrong bytes up")
    t2 = time.monotonic()
    print("down_ms=%d up_ms=%d" % ((t1 - t0) * 1000, (t2 - t1) * 1000))
    t.join(5)


main()
