#!/usr/bin/env python3
"""A proxy that fails, for the failover tests; counts who came.

usage: fakeproxy.py PORTFILE MODE COUNTFILE
  close    accepts each connection and closes it at once
  garbage  accepts, answers "HTTP/1.0 400 Bad Request" and closes
  silent   listens and never accepts (a blackhole past the TCP handshake:
           the kernel completes it, nobody ever answers)
  httppart reads a request, answers "HTTP/1.1 200 Co" and closes
  s5stall  SOCKS5: answers the greeting (no authentication), reads the
           request and never answers it (a CONNECT that never comes up)
  s5fail   SOCKS5: answers the greeting, then every request with reply 01
           (general failure: a proxy that cannot get out)
  s5part   SOCKS5: answers the greeting, then three octets of a reply to
           the request, and hangs up
Listens on 127.0.0.1, an ephemeral port written to PORTFILE; appends a
line to COUNTFILE per connection it accepted (none for silent).
"""
import socket
import sys


def main():
    portfile, mode, countfile = sys.argv[1:4]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    import os
    os.rename(portfile + ".tmp", portfile)
    if mode == "silent":
        while True:
            socket.socket().close()
            import time
            time.sleep(3600)
    held = []
    while True:
        conn, _ = lsock.accept()
        with open(countfile, "a") as f:
            f.write("conn\n")
        try:
            if mode == "garbage":
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            elif mode == "httppart":
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 Co")
            elif mode == "s5fail":
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(b"\x05\x00")
                conn.recv(4096)
                conn.sendall(b"\x05\x01\x00\x01" + bytes(6))
            elif mode == "s5part":
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(b"\x05\x00")
                conn.recv(4096)
                conn.sendall(b"\x05\x00\x00")
            elif mode == "s5stall":
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(b"\x05\x00")
                held.append(conn)   # open, silent: closed when we exit
                continue
        except OSError:
            pass
        conn.close()


if __name__ == "__main__":
    main()
