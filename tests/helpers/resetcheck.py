#!/usr/bin/env python3
"""Does a reset cross the relay as a reset? One session, loopback.

usage: resetcheck.py PROXYPORT|direct target|client SIZE

A target on 127.0.0.1:0 and a client connected to it through the SOCKS5
proxy on 127.0.0.1:PROXYPORT (RFC 1928, no authentication), or directly.
  target  the target sends SIZE bytes, then aborts (SO_LINGER 0: a RST);
          the client reads to the end.
  client  the client sends SIZE bytes, then aborts; the target reads to
          the end.
The reading side prints "N bytes, reset" when its reads ended in
ECONNRESET, "N bytes, eof" on a clean end (FIN). Fails (a traceback) on a
timeout or a handshake the proxy refused.
"""
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rttprobe import recv_exact, socks_reply  # noqa: E402

TIMEOUT_S = 20


def abort(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_to_end(sock):
    n = 0
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return "%d bytes, eof" % n
            n += len(b)
    except ConnectionResetError:
        return "%d bytes, reset" % n


def main():
    via, who, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bytes(i % 251 for i in range(size))
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    lsn.settimeout(TIMEOUT_S)
    tport = lsn.getsockname()[1]
    seen = {}

    def target():
        conn, _ = lsn.accept()
        conn.settimeout(TIMEOUT_S)
        if who == "target":
            conn.sendall(data)
            abort(conn)
        else:
            seen["target"] = read_to_end(conn)
            conn.close()

    th = threading.Thread(target=target, daemon=True)
    th.start()
    cli = socket.create_connection(("127.0.0.1", tport if via == "direct" else int(via)), TIMEOUT_S)
    cli.settimeout(TIMEOUT_S)
    if via != "direct":
        cli.sendall(b"\x05\x01\x00")
        if recv_exact(cli, 2) != b"\x05\x00":
            raise SystemExit("resetcheck: no-auth refused")
        cli.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", tport))
        socks_reply(cli)  # OSError unless 00
    if who == "target":
        print(read_to_end(cli))
        cli.close()
    else:
        cli.sendall(data)
        abort(cli)
    th.join(TIMEOUT_S)
    if th.is_alive():
        raise SystemExit("resetcheck: the target did not finish")
    if "target" in seen:
        print(seen["target"])


if __name__ == "__main__":
    main()
