#!/usr/bin/env python3
"""A SOCKS5 server that grants every UDP ASSOCIATE a relay where nothing
listens (BND 127.0.0.1:PORT of a closed port), and keeps the control
connection open: the relay's port is closed, the proxy is not.

usage: s5fakeudp.py PORTFILE
"""
import os
import socket
import struct
import sys
import threading


def closed_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(c):
    with c:
        c.settimeout(30)
        head = c.recv(2)
        c.recv(head[1])
        c.sendall(b"\x05\x00")
        req = c.recv(262)
        if len(req) < 4 or req[1] != 3:
            c.sendall(b"\x05\x07\x00\x01" + b"\0" * 6)
            return
        c.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") +
                  struct.pack("!H", closed_port()))
        try:
            c.recv(1)
        except OSError:
            pass


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
