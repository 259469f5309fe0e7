#!/usr/bin/env python3
"""What a program sees: run inside the preload and report errno values.

usage:
  netprobe.py connect HOST PORT        blocking connect; prints "ok" or errno name
  netprobe.py connect-b HOST PORT      blocking connect; the socket must stay
                                       blocking afterwards
  netprobe.py udpconnect53 HOST        connect() a UDP socket to HOST:53, send
  netprobe.py connect-nb HOST PORT     non-blocking socket: connect, then
                                       report the result and that O_NONBLOCK
                                       is still set
  netprobe.py asyncio HOST PORT PATH   asyncio open_connection + HTTP GET,
                                       prints the sha256 of the body
  netprobe.py resolve NAME             getaddrinfo(NAME), prints addresses
  netprobe.py udp53 HOST               sendto HOST:53 on a UDP socket
  netprobe.py v6sock HOST PORT PATH    AF_INET6 socket (v4-mapped target),
                                       HTTP GET, prints sha256 of the body
"""
import asyncio
import errno
import hashlib
import socket
import sys


def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    return body


def http_get(sock, host, path):
    sock.sendall(b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
    data = b""
    while True:
        b = sock.recv(65536)
        if not b:
            return data
        data += b


def main():
    op = sys.argv[1]
    if op == "connect":
        host, port = sys.argv[2], int(sys.argv[3])
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.connect((host, port))
            print("ok")
        except OSError as e:
            print(name(e))
    elif op == "connect-b":
        host, port = sys.argv[2], int(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, port))
        print("ok", "blocking" if s.getblocking() else "nonblocking")
    elif op == "udpconnect53":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((sys.argv[2], 53))
            s.send(b"\0" * 12)
            print("sent")
        except OSError as e:
            print(name(e))
    elif op == "connect-nb":
        host, port = sys.argv[2], int(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        r = s.connect_ex((host, port))
        res = "ok" if r in (0, errno.EINPROGRESS) else errno.errorcode.get(r, str(r))
        if r == errno.EINPROGRESS:
            import select
            select.select([], [s], [], 10)
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            res = "ok" if e == 0 else errno.errorcode.get(e, str(e))
        print(res, "blocking" if s.getblocking() else "nonblocking")
    elif op == "asyncio":
        host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]

        async def run():
            r, w = await asyncio.open_connection(host, port)
            w.write(b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
            data = await r.read()
            w.close()
            return data

        print(hashlib.sha256(body_of(asyncio.run(run()))).hexdigest())
    elif op == "resolve":
        for ai in socket.getaddrinfo(sys.argv[2], 80, socket.AF_UNSPEC, socket.SOCK_STREAM):
            print(ai[4][0])
    elif op == "udp53":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"\0" * 12, (sys.argv[2], 53))
            print("sent")
        except OSError as e:
            print(name(e))
    elif op == "v6sock":
        host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.connect(("::ffff:" + host, port))
        print(hashlib.sha256(body_of(http_get(s, host, path))).hexdigest())
    else:
        sys.exit("unknown op " + op)


if __name__ == "__main__":
    main()
