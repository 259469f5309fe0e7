#!/usr/bin/env python3
"""free_port.py DIR: print a TCP port below the ephemeral range that nothing
is bound to on any address of either family, and leave DIR/PORT behind so
that no other caller (of any suite running at once) is handed it within the
hour. See free_port in common.bash for why."""
import os
import random
import socket
import sys
import time

LO, HI = 20000, 32767


def main():
    marks = sys.argv[1]
    hi = HI
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = min(hi, int(f.read().split()[0]) - 1)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(500):
        port = random.randint(LO, hi)
        if not claim(os.path.join(marks, str(port))):
            continue
        if bindable(port):
            print(port)
            return 0
    sys.stderr.write("free_port: no free port in %d-%d after 500 tries\n" % (LO, hi))
    return 1


def claim(marker):
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        pass
    try:
        if time.time() - os.stat(marker).st_mtime < 3600:
            return False
        os.utime(marker)
        return True
    except OSError:
        return False


def bindable(port):
    try:
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        addr = ("::", port)
    except OSError:
        s, addr = socket.socket(), ("127.0.0.1", port)
    try:
        s.bind(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
