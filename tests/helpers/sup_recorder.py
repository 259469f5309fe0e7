#!/usr/bin/env python3
"""A TCP listener that records every connection it accepts, for
tests/supervisor.bats: a connection that reaches it directly, and not
through the proxy, is a leak.

usage: sup_recorder.py PORTFILE LOGFILE
Binds 127.0.0.1 on an ephemeral port, writes the port to PORTFILE once
listening, and appends "accept PEER" to LOGFILE for each connection (before
reading anything), then "request LINE" for the first line the peer sends.
Every peer gets "HTTP/1.0 200 OK" and the body "recorded".
"""
import os
import socket
import sys
import threading


def serve(conn, peer, log):
    with open(log, "a") as f:
        f.write("accept %s:%d\n" % peer)
    try:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            b = conn.recv(4096)
            if not b:
                break
            data += b
        line = data.split(b"\r\n", 1)[0].decode("ascii", "replace")
        with open(log, "a") as f:
            f.write("request %s\n" % line)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nrecorded\n")
    except OSError:
        pass
    finally:
        conn.close()


def main():
    portfile, log = sys.argv[1:3]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    open(log, "a").close()
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, peer, log), daemon=True).start()


if __name__ == "__main__":
    main()
