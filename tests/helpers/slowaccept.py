#!/usr/bin/env python3
"""CONNECT through a SOCKS5 server to a target whose connect cannot finish
at once, and check the bytes both ways.

usage: slowaccept.py PROXY_PORT

The target listens on 127.0.0.1 with a backlog of 0, and a first
connection, not accepted, fills its queue: the kernel drops the proxy's SYN,
so the proxy's non-blocking connect() stays in SYN-SENT until its SYN is
sent again (about 1 s later), after the target has accepted the first
connection (0.3 s after the request went to the proxy). Prints "reply HEX seconds S echo TEXT": the reply's
first two bytes, the time from the request to the whole reply, and what
came back for "hello" (the target answers it reversed). Exit 0 when the
reply succeeded and the echo is "olleh", 1 otherwise. Every wait is bounded.
"""
import socket
import struct
import sys
import threading
import time


def target(ls, sent, errors):
    try:
        ls.settimeout(10)
        if not sent.wait(10):
            raise OSError("the request was never sent")
        time.sleep(0.3)
        filler, _ = ls.accept()
        conn, _ = ls.accept()
        conn.settimeout(10)
        data = conn.recv(100)
        conn.sendall(data[::-1])
        conn.close()
        filler.close()
    except OSError as e:
        errors.append(str(e))


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    return got


def main():
    proxy = int(sys.argv[1])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    errors = []
    sent = threading.Event()
    t = threading.Thread(target=target, args=(ls, sent, errors), daemon=True)
    t.start()
    c = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    t0 = time.monotonic()
    c.sendall(b"\x05\x01\x00" + b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") +
              struct.pack(">H", port))
    sent.set()
    method = recv_exact(c, 2)
    reply = recv_exact(c, 10)
    elapsed = time.monotonic() - t0
    echo = b""
    if method == b"\x05\x00" and reply[:2] == b"\x05\x00":
        c.sendall(b"hello")
        echo = recv_exact(c, 5)
    c.close()
    t.join(10)
    filler.close()
    print("reply %s seconds %.2f echo %s%s" % (reply[:2].hex(), elapsed, echo.decode(errors="replace"),
          " target: " + "; ".join(errors) if errors else ""))
    sys.exit(0 if reply[:2] == b"\x05\x00" and echo == b"olleh" else 1)


if __name__ == "__main__":
    main()
