#!/usr/bin/env python3
"""A DNS server on 127.0.0.1:53 that answers REFUSED to everything and
records the name of every query it receives, one per line.

usage: dnssink.py READYFILE LOGFILE [--delay=SECONDS] [NAME=IPV4...]
Writes READYFILE once bound (bind fails with exit 3 if the port is taken).
A NAME given answers an A query with its IPV4 and an AAAA query with no
address (NOERROR), still recorded. --delay: every reply that much later
(a slow resolver; queries are still taken as they come).
Used with scripts/test.sh's resolver jail (nameserver 127.0.0.1): a query
that reaches this sink is a query that would have left the host.
"""
import socket
import struct
import sys
import threading


def qname(msg):
    labels, i = [], 12
    while i < len(msg) and msg[i] != 0 and len(labels) < 128:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels)


def question_end(msg):
    """The offset just past the question's QTYPE and QCLASS, or None."""
    i = 12
    while i < len(msg) and msg[i] != 0:
        i += 1 + msg[i]
    return i + 5 if i + 5 <= len(msg) else None


def answer(msg, ip):
    """NOERROR: ip for an A query, no address for any other type."""
    end = question_end(msg)
    if end is None:
        return None
    qtype = struct.unpack("!H", msg[end - 4:end - 2])[0]
    rr = b""
    if qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    flags = bytes([0x80 | (msg[2] & 0x79), 0x80])
    return msg[:2] + flags + struct.pack("!HHHH", 1, 1 if rr else 0, 0, 0) + msg[12:end] + rr


def main():
    ready, log = sys.argv[1:3]
    delay = 0.0
    args = sys.argv[3:]
    if args and args[0].startswith("--delay="):
        delay = float(args.pop(0)[len("--delay="):])
    names = dict(a.split("=", 1) for a in args)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 53))
    except OSError as e:
        print("dnssink: %s" % e, file=sys.stderr)
        sys.exit(3)
    open(ready, "w").write("ready\n")
    while True:
        msg, peer = s.recvfrom(65535)
        if len(msg) < 12:
            continue
        with open(log, "a") as f:
            f.write(qname(msg) + "\n")
        ip = names.get(qname(msg).lower().rstrip("."))
        reply = answer(msg, ip) if ip is not None else None
        if reply is None:
            # header: same ID, QR=1, opcode copied, RCODE=5 (REFUSED)
            reply = msg[:2] + bytes([0x80 | (msg[2] & 0x78), 0x05]) + msg[4:6] + b"\0" * 6 + msg[12:]
        if delay > 0:
            threading.Timer(delay, s.sendto, (reply, peer)).start()
        else:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
