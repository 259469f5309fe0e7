#!/usr/bin/env python3
"""A client for the failover tests; run it under libsocksify.so.

usage: failover.py MODE PORT [N]
  get       one GET of /hello.txt from 127.0.0.1:PORT, blocking socket:
            the body's sha256, or the errno name
  nonblock  the same on a non-blocking socket: connect() must say
            EINPROGRESS, select() then says writable and SO_ERROR 0
            ("einprogress", then the sha256)
  many      N GETs, one connection each: "ok N" when every body came
  down      N connects in a row: the errno name of each that failed other
            than ECONNREFUSED, then "refused N later-max-ms X": how many
            were refused, and the slowest of all but the first in ms
  fork      one GET, then a fork()ed child's GET and an exec()ed child's
            (a new python): three sha256 lines
  swap      one GET; then, once the file named by N exists (30 s at most),
            two more: three lines as get's (the test swaps the proxy
            between)
  v6only    one GET of /hello.txt from [::1]:PORT on an IPv6 socket with
            IPV6_V6ONLY set before connect(): the flag as the socket reads
            it after the body, and the body's sha256
"""
import errno
import hashlib
import os
import select
import socket
import subprocess
import sys
import time


def get(port, blocking=True, v6only=False):
    s = socket.socket(socket.AF_INET6 if v6only else socket.AF_INET)
    if v6only:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    host = "::1" if v6only else "127.0.0.1"
    # FAILOVER_CONNECT_TIMEOUT: the program's own bound on connect(), in
    # seconds (Python's settimeout(): a non-blocking connect, then poll()).
    limit = os.environ.get("FAILOVER_CONNECT_TIMEOUT")
    try:
        if blocking and limit:
            s.settimeout(float(limit))
            try:
                s.connect((host, port))
            except socket.timeout:
                s.close()
                return "timeout"
            s.settimeout(None)
        elif blocking:
            s.connect((host, port))
        else:
            s.setblocking(False)
            r = s.connect_ex((host, port))
            if r != errno.EINPROGRESS:
                return "connect said %s" % errno.errorcode.get(r, r)
            print("einprogress")
            _, w, _ = select.select([], [s], [], 30)
            if not w:
                return "never writable"
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return errno.errorcode.get(err, str(err))
            s.setblocking(True)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    flag = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) if v6only else None
    s.close()
    body = data.split(b"\r\n\r\n", 1)[-1]
    sha = hashlib.sha256(body).hexdigest()
    return sha if flag is None else "%d %s" % (flag, sha)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 and mode != "swap" else 1
    if mode == "get":
        print(get(port))
    elif mode == "nonblock":
        print(get(port, blocking=False))
    elif mode == "v6only":
        print(get(port, v6only=True))
    elif mode == "many":
        want = get(port)
        good = sum(1 for _ in range(n - 1) if get(port) == want) + 1
        print("ok %d" % good if good == n and len(want) == 64 else "bad %d" % good)
    elif mode == "down":
        refused, worst = 0, 0.0
        for i in range(n):
            s = socket.socket()
            t0 = time.monotonic()
            try:
                s.connect(("127.0.0.1", port))
                print("connected")
            except OSError as e:
                if e.errno == errno.ECONNREFUSED:
                    refused += 1
                else:
                    print(errno.errorcode.get(e.errno, e.errno))
            if i > 0:
                worst = max(worst, (time.monotonic() - t0) * 1000)
            s.close()
        print("refused %d later-max-ms %.3f" % (refused, worst))
    elif mode == "swap":
        print(get(port), flush=True)
        for _ in range(300):
            if os.path.exists(sys.argv[3]):
                break
            time.sleep(0.1)
        print(get(port))
        print(get(port))
    elif mode == "fork":
        print(get(port))
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            print(get(port))
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "get", str(port)], check=False)


if __name__ == "__main__":
    main()
