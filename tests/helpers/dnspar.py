#!/usr/bin/env python3
"""Many DNS queries of one program at once, as a Go program's parallel
lookups make them (tests/supervisor.bats: the supervisor's resolver).
Each query asks for an A record of NAME of the first nameserver of
/etc/resolv.conf, port 53; rawdns.py builds and reads them.

usage: dnspar.py NAME collide
  Two UDP sockets bound to local ports P and P + 1024 (equal modulo a
  table size), both connect()ed to the nameserver before either sends a
  query: prints "answered N of 2".
usage: dnspar.py NAME udp N
  N unconnected UDP sockets, each sendto() a query (as musl's resolver
  does), then each recvfrom(): prints "answered N of N, wrong source M"
  (M: replies not from the nameserver's address and port 53).
usage: dnspar.py NAME tcp N
  N TCP connections to the nameserver at once (options use-vc), each
  sending a query before any answer is read: prints "answered N of N".
Every wait is bounded (3 s a socket).
"""
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawdns import answer, nameserver, query  # noqa: E402


def placeholder(qid, msg):
    try:
        answer(qid, msg)
        return True
    except SystemExit:
        return False


def collide(name, server):
    socks = []
    for _ in range(200):
        port = random.randrange(20000, 40000)
        a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind(("0.0.0.0", port))
            b.bind(("0.0.0.0", port + 1024))
            socks = [a, b]
            break
        except OSError:
            a.close()
            b.close()
    asked = []
    for s in socks:
        s.connect((server, 53))
        s.settimeout(3)
    for s in socks:
        qid, q = query(name)
        s.send(q)
        asked.append(qid)
    ok = 0
    for s, qid in zip(socks, asked):
        try:
            ok += placeholder(qid, s.recv(512))
        except socket.timeout:
            pass
    print("answered %d of 2" % ok)


def udp(name, server, n):
    socks, asked = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        qid, q = query(name)
        s.sendto(q, (server, 53))
        socks.append(s)
        asked.append(qid)
    ok = wrong = 0
    for s, qid in zip(socks, asked):
        try:
            msg, src = s.recvfrom(512)
        except socket.timeout:
            continue
        if src != (server, 53):
            wrong += 1
        ok += placeholder(qid, msg)
    print("answered %d of %d, wrong source %d" % (ok, n, wrong))


def tcp(name, server, n):
    socks, asked = [], []
    for _ in range(n):
        s = socket.create_connection((server, 53), timeout=3)
        qid, q = query(name)
        s.sendall(struct.pack("!H", len(q)) + q)
        socks.append(s)
        asked.append(qid)
    ok = 0
    for s, qid in zip(socks, asked):
        try:
            head = s.recv(2, socket.MSG_WAITALL)
            if len(head) == 2:
                size, = struct.unpack("!H", head)
                ok += placeholder(qid, s.recv(size, socket.MSG_WAITALL))
        except OSError:
            pass
    print("answered %d of %d" % (ok, n))


def main():
    name, mode = sys.argv[1], sys.argv[2]
    server = nameserver()
    if mode == "collide":
        collide(name, server)
    elif mode == "udp":
        udp(name, server, int(sys.argv[3]))
    else:
        tcp(name, server, int(sys.argv[3]))


if __name__ == "__main__":
    main()
