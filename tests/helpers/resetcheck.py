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
ECONNRESET, "N bytes, eof" on a clean end (FIN), or "N bytes, wrong" when
what it read is not the start of what was sent. The target sends only
once the client holds the CONNECT reply: a target that aborts before the
proxy has seen its connect complete is a failed connect (reply 05), not
the case tested here. Fails (a traceback) on a timeout or a refused
handshake.
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


def read_to_end(sock, data):
    got = bytearray()
    end = "eof"
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        end = "reset"
    if got != data[:len(got)]:
        end = "wrong"
    return "%d bytes, %s" % (len(got), end)


def main():
    via, who, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bytes(i % 251 for i in range(size))
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    lsn.settimeout(TIMEOUT_S)
    tport = lsn.getsockname()[1]
    seen = {}
    replied = threading.Event()

    def target():
        conn, _ = lsn.accept()
        conn.settimeout(TIMEOUT_S)
        if who == "target":
            replied.wait(TIMEOUT_S)
            conn.sendall(data)
            abort(conn)
        else:
            seen["target"] = read_to_end(conn, data)
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
    replied.set()
    if who == "target":
        print(read_to_end(cli, data))
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
