#!/usr/bin/env python3
"""Clients for the --metrics tests.

usage: metricsprobe.py MODE ARGS...
  hold PROXYPORT TARGETPORT N USER PASS GO
            N SOCKS5 sessions (username/password) to 127.0.0.1:TARGETPORT,
            each sending a GET for /payload.bin and reading 64 KiB of the
            answer: prints "held N", then keeps them open until the file
            GO appears (at most 30 s), and closes them
  stall METRICSPORT N
            N connections to the metrics port, each sending half a request
            and nothing more, plus one that asks whole and never reads (a
            receive buffer of 1 KiB); prints "stalled N", then "closed K
            max-ms X": how many the server closed within 15 s, the last
            of the half requests after X ms; before that, "extra EOF" or "extra OPEN" for one more
            connection beyond the server's limit (closed at once, or not)
"""
import os
import select
import socket
import struct
import sys
import time


def socks_connect(pport, tport, user, pw):
    s = socket.create_connection(("127.0.0.1", pport), timeout=10)
    s.sendall(b"\x05\x01\x02")
    assert s.recv(2) == b"\x05\x02"
    u, p = user.encode(), pw.encode()
    s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
    assert s.recv(2) == b"\x01\x00"
    s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", tport))
    rep = s.recv(10)
    assert rep[:2] == b"\x05\x00", rep
    return s


def hold(pport, tport, n, user, pw, go):
    socks = []
    for _ in range(n):
        s = socks_connect(pport, tport, user, pw)
        s.sendall(b"GET /payload.bin HTTP/1.0\r\nHost: x\r\n\r\n")
        got = 0
        while got < 65536:
            chunk = s.recv(65536 - got)
            if not chunk:
                break
            got += len(chunk)
        socks.append(s)
    print("held %d" % len(socks), flush=True)
    end = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < end:
        time.sleep(0.05)
    for s in socks:
        s.close()


def stall(mport, n):
    t0 = time.monotonic()
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", mport), timeout=5)
        s.sendall(b"GET /metr")
        conns.append(s)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow.connect(("127.0.0.1", mport))
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(slow)
    print("stalled %d" % len(conns), flush=True)
    extra = socket.create_connection(("127.0.0.1", mport), timeout=5)
    r, _, _ = select.select([extra], [], [], 2)
    eof = False
    if r:
        try:
            eof = extra.recv(1) == b""
        except OSError:
            eof = True
    print("extra %s" % ("EOF" if eof else "OPEN"), flush=True)
    closed, last = 0, 0.0
    open_ = conns[:-1]
    end = time.monotonic() + 15
    while open_ and time.monotonic() < end:
        r, _, _ = select.select(open_, [], [], 0.5)
        for s in r:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data == b"":
                closed += 1
                last = max(last, (time.monotonic() - t0) * 1000)
                open_.remove(s)
    # The one that never read: its answer is cut at the deadline.
    slow.settimeout(10)
    try:
        while slow.recv(65536):
            pass
        closed += 1
    except TimeoutError:
        pass
    except OSError:
        closed += 1
    print("closed %d max-ms %d" % (closed, last), flush=True)


def main():
    mode = sys.argv[1]
    if mode == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
             sys.argv[6], sys.argv[7])
    elif mode == "stall":
        stall(int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
