#!/usr/bin/python3
"""Fetch a file over HTTP/1.0 through a SOCKS5 proxy with PySocks.

usage: /usr/bin/python3 pysocks_get.py PROXYPORT HOST PORT PATH RDNS [USER PASS]
PySocks is Debian's python3-socks, importable from /usr/bin/python3 only.
RDNS 1 sends HOST to the proxy as a name (ATYP 03); 0 resolves it here.
Prints the HTTP status code and the sha256 of the body; on a proxy error,
prints the PySocks exception's class and message and exits 1.
"""
import hashlib
import sys

import socks

TIMEOUT_S = 15


def main():
    pport, host, port, path, rdns = sys.argv[1:6]
    user, password = (sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else (None, None)
    s = socks.socksocket()
    s.settimeout(TIMEOUT_S)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", int(pport), rdns=rdns == "1",
                username=user, password=password)
    try:
        s.connect((host, int(port)))
    except socks.ProxyError as e:
        print("%s: %s" % (type(e).__name__, e))
        sys.exit(1)
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    print(head.split(b" ")[1].decode(), hashlib.sha256(body).hexdigest())


if __name__ == "__main__":
    main()
