#!/usr/bin/env python3
"""A proxy that fails, for the failover tests; counts who came.

usage: fakeproxy.py PORTFILE MODE COUNTFILE
  close    accepts each connection and closes it at once
  garbage  accepts, answers "HTTP/1.0 400 Bad Request" and closes
  silent   listens and never accepts (a blackhole past the TCP handshake:
           the kernel completes it, nobody ever answers)
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
    while True:
        conn, _ = lsock.accept()
        with open(countfile, "a") as f:
            f.write("conn\n")
        if mode == "garbage":
            try:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            except OSError:
                pass
        conn.close()


if __name__ == "__main__":
    main()
