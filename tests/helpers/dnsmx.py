#!/usr/bin/env python3
"""A DNS server over TCP on 127.0.0.1 for SOCKSIFY_DNS: it answers every
MX query with "10 mx.NAME." and anything else with NOTIMP, and logs "TYPE
NAME from IP" for each query (the proxy, when the library asked through it).

usage: dnsmx.py PORTFILE LOGFILE
Binds an ephemeral port and writes it to PORTFILE; serves until killed.
"""
import os
import socket
import struct
import sys
import threading


def name_at(msg, i):
    labels = []
    while msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii"))
        i += 1 + n
    return ".".join(labels), i + 1


def encode(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def answer(q):
    name, end = name_at(q, 12)
    qtype, = struct.unpack("!H", q[end:end + 2])
    question = q[12:end + 4]
    if qtype != 15:
        return qtype, name, q[:2] + b"\x81\x04" + b"\0\x01\0\0\0\0\0\0" + question
    rdata = struct.pack("!H", 10) + encode("mx." + name)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 300, len(rdata)) + rdata
    return qtype, name, q[:2] + b"\x81\x80" + b"\0\x01\0\x01\0\0\0\0" + question + rr


def serve(c, peer, log):
    with c:
        while True:
            head = c.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return
            n, = struct.unpack("!H", head)
            q = c.recv(n, socket.MSG_WAITALL)
            qtype, name, reply = answer(q)
            with open(log, "a") as f:
                f.write("%d %s from %s\n" % (qtype, name, peer[0]))
            c.sendall(struct.pack("!H", len(reply)) + reply)


def main():
    portfile, log = sys.argv[1:3]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        c, peer = s.accept()
        threading.Thread(target=serve, args=(c, peer, log), daemon=True).start()


if __name__ == "__main__":
    main()
