#!/usr/bin/env python3
"""lbload.py: sessions through a SOCKS5 entry point (a load balancer in front
of several socksifyd), from several client threads, every byte checked.

usage: lbload.py PROXYPORT ECHOPORT THREADS SESSIONS SIZE PROGRESS
Each of THREADS threads binds its connections to 127.0.0.(2 + its number)
and runs SESSIONS sessions one after another: SOCKS5 (no authentication),
CONNECT 127.0.0.1:ECHOPORT (an echo target, echod.py), SIZE random bytes,
a half-close, and the whole echo read back and compared. One session at a
time per thread: at most THREADS are in flight at any moment. Appends
"done N" to PROGRESS every 50 sessions; prints "ok=N failed=N" and, for each
failure, "fail THREAD SESSION REASON". Exit 0 when the run finished (the
caller judges the counts).
"""
import os
import socket
import struct
import sys
import threading

TIMEOUT_S = 20


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("EOF after %d of %d bytes" % (len(b), n))
        b += c
    return b


def session(src, proxy_port, echo_port, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT_S)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", proxy_port))
        s.sendall(b"\x05\x01\x00")
        if recvn(s, 2) != b"\x05\x00":
            raise ValueError("method refused")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo_port))
        rep = recvn(s, 10)
        if rep[1] != 0:
            raise ValueError("reply %02x" % rep[1])
        data = os.urandom(size)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
        if got != data:
            raise ValueError("echo differs: %d of %d bytes" % (len(got), size))
    finally:
        s.close()


def main():
    proxy_port, echo_port, threads, sessions, size = (int(a) for a in sys.argv[1:6])
    progress = sys.argv[6]
    lock = threading.Lock()
    state = {"ok": 0, "failed": 0, "done": 0}
    fails = []

    def run(t):
        src = "127.0.0.%d" % (2 + t)
        for i in range(sessions):
            try:
                session(src, proxy_port, echo_port, size)
                ok = True
            except (OSError, ValueError, EOFError) as e:
                ok = False
                why = "%s: %s" % (type(e).__name__, e)
            with lock:
                state["ok" if ok else "failed"] += 1
                state["done"] += 1
                if not ok:
                    fails.append("fail %d %d %s" % (t, i, why))
                if state["done"] % 50 == 0:
                    with open(progress, "a") as f:
                        f.write("done %d\n" % state["done"])

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("ok=%d failed=%d" % (state["ok"], state["failed"]))
    for line in fails:
        print(line)


if __name__ == "__main__":
    main()
