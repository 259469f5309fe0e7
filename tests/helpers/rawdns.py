#!/usr/bin/env python3
"""A program with its own DNS code: it builds an A query itself, sends it
over UDP to the first nameserver of /etc/resolv.conf (sendto() on an
unconnected socket, or connect()+send() with "connected"), parses the
answer, then fetches http://ANSWER:PORT/PATH with a Host header of the name.

usage: rawdns.py NAME PORT PATH [connected]
Prints "answer IP from SERVER:53", then "body SHA256".

usage: rawdns.py NAME tfo sendto|sendmsg
Over TCP instead, the query going out with the connect (MSG_FASTOPEN, by
sendto() or sendmsg()): prints "answer IP from SERVER:53" only.
"""
import hashlib
import random
import socket
import struct
import sys


def nameserver():
    with open("/etc/resolv.conf") as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0] == "nameserver":
                return w[1]
    raise SystemExit("no nameserver in /etc/resolv.conf")


def query(name):
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\0" + struct.pack("!HH", 1, 1)


def answer(qid, msg):
    rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid or not flags & 0x8000 or flags & 0xF or an < 1:
        raise SystemExit("bad answer: id %d flags %#x an %d" % (rid, flags, an))
    off = 12
    while msg[off]:
        off += 1 + msg[off]
    off += 5
    # the first answer: a pointer to the question name, then TYPE CLASS TTL RDLEN
    typ, cls, ttl, rdlen = struct.unpack("!HHIH", msg[off + 2:off + 12])
    if typ != 1 or rdlen != 4:
        raise SystemExit("not an A record: type %d len %d" % (typ, rdlen))
    return socket.inet_ntoa(msg[off + 12:off + 16])


def fastopen(name, how):
    server = nameserver()
    qid, q = query(name)
    msg = struct.pack("!H", len(q)) + q
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if how == "sendto":
        s.sendto(msg, socket.MSG_FASTOPEN, (server, 53))
    else:
        s.sendmsg([msg], [], socket.MSG_FASTOPEN, (server, 53))
    n, = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))
    ip = answer(qid, s.recv(n, socket.MSG_WAITALL))
    src = s.getpeername()
    print("answer %s from %s:%d" % (ip, src[0], src[1]))


def main():
    if sys.argv[2] == "tfo":
        fastopen(sys.argv[1], sys.argv[3])
        return
    name, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = nameserver()
    qid, q = query(name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    if sys.argv[4:] == ["connected"]:
        s.connect((server, 53))
        s.send(q)
        msg = s.recv(512)
        src = s.getpeername()
    else:
        s.sendto(q, (server, 53))
        msg, src = s.recvfrom(512)
    ip = answer(qid, msg)
    print("answer %s from %s:%d" % (ip, src[0], src[1]))
    c = socket.create_connection((ip, port), timeout=10)
    c.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, name)).encode())
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    body = data.split(b"\r\n\r\n", 1)[1]
    print("body %s" % hashlib.sha256(body).hexdigest())


if __name__ == "__main__":
    main()
