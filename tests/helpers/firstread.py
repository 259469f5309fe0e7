#!/usr/bin/env python3
"""A forwarder that records how a client's handshake arrives.

usage: firstread.py PORTFILE LOG UPSTREAMPORT
Listens on 127.0.0.1 (port written to PORTFILE), forwards each connection
to 127.0.0.1:UPSTREAMPORT both ways, and appends to LOG the hex of the
first chunk the client sent (one recv() after it is readable, after a
pause that lets a whole write arrive): a client that pipelines its
handshake shows greeting, credentials and request in it.
"""
import os
import select
import socket
import sys
import threading
import time


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(c, log, up):
    select.select([c], [], [], 10)
    time.sleep(0.05)
    first = c.recv(65536)
    with open(log, "a") as f:
        f.write(first.hex() + "\n")
    u = socket.create_connection(("127.0.0.1", up))
    u.sendall(first)
    t = threading.Thread(target=pump, args=(u, c), daemon=True)
    t.start()
    pump(c, u)
    t.join(30)
    c.close()
    u.close()


def main():
    pf, log, up = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    with open(pf + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(pf + ".tmp", pf)
    while True:
        c, _ = lsock.accept()
        threading.Thread(target=serve, args=(c, log, up), daemon=True).start()


if __name__ == "__main__":
    main()
