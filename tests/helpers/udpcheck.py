#!/usr/bin/env python3
"""A UDP client for the relay tests; run it under libsocksify.so.

usage: udpcheck.py MODE HOST PORT
  echo      sendto()/recvfrom() of 1 B to 65,000 B datagrams, recvmsg(),
            recv_into(), then connect()+send()/recv() and getpeername();
            one line per check: "NAME ok|bad DETAIL", and "local PORT PORT"
            (the two sockets' own ports)
  asyncio   50 datagrams through an asyncio datagram endpoint (non-blocking
            socket, the event loop's epoll): "asyncio ok N" when every one
            came back intact
  once      one datagram, sendto() then recvfrom() with a 3 s timeout;
            prints "ok" or the errno name
  twice     as once, then again after 1 s (the relay may have gone)
  send      one sendto() and no wait for a reply: "sent" or the errno name;
            a 4th argument is an address the socket binds to first
  slow      a non-blocking socket: the ms its first sendto() took (the
            association is set up behind it), then "ok" when the echo came
            back within 5 s: "sendto-ms N" then "ok"; "blocking" as the
            5th argument: a blocking socket, for comparison
  connected connect() then send() and recv() with a 3 s timeout: "ok", or
            the errno name, or "timeout"
  close     a round trip, then close() the socket and print "closed", then
            stay for 3 s (the association must end with the socket)
  stranger  connect() and a round trip; "local PORT"; when the file GO
            (4th argument) appears, another round trip: "ok" when the echo
            came and nothing else did, else what came; "nonblocking" as
            the 5th argument: a non-blocking socket
  reconnect connect() then send()/recv() once; when the file GO (4th
            argument) appears (within 20 s), twice more: "ok" or the errno
            name for each of the three
HOST may be a name (resolved with getaddrinfo, as programs do).
"""
import asyncio
import errno
import hashlib
import os
import socket
import sys


def family(host, port):
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    return ai[0], ai[4]


def fmt(addr):
    return "%s:%d" % (addr[0] if ":" not in addr[0] else "[%s]" % addr[0], addr[1])


def echo(host, port):
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(5)
    for size in (1, 512, 1024, 8192, 65000):
        data = os.urandom(size)
        s.sendto(data, dst)
        got, src = s.recvfrom(65535)
        print("sendto-%d %s %s %s" % (size, "ok" if got == data else "bad",
                                      fmt(src), hashlib.sha256(got).hexdigest()[:16]))
    data = os.urandom(3000)
    s.sendto(data, dst)
    got, anc, flags, src = s.recvmsg(65535)
    print("recvmsg %s %s" % ("ok" if got == data else "bad", fmt(src)))
    # a buffer too small: truncated as the kernel truncates, MSG_TRUNC set
    s.sendto(data, dst)
    got, anc, flags, src = s.recvmsg(100)
    print("truncated %s %s" % ("ok" if got == data[:100] and flags & socket.MSG_TRUNC else "bad",
                               fmt(src)))
    c = socket.socket(fam, socket.SOCK_DGRAM)
    c.settimeout(5)
    c.connect(dst)
    print("getpeername %s" % fmt(c.getpeername()))
    data = os.urandom(1024)
    c.send(data)
    got = c.recv(65535)
    print("connected %s" % ("ok" if got == data else "bad"))
    print("local %d %d" % (s.getsockname()[1], c.getsockname()[1]))
    c.settimeout(None)  # blocking: os.read() waits as a C program's read() does
    os.write(c.fileno(), data[::-1])
    got = os.read(c.fileno(), 65535)
    print("write-read %s" % ("ok" if got == data[::-1] else "bad"))
    c.close()
    s.close()


class Echo(asyncio.DatagramProtocol):
    def __init__(self, want, done):
        self.want, self.done, self.got = want, done, 0

    def datagram_received(self, data, addr):
        if data in self.want:
            self.want.discard(data)
            self.got += 1
        if not self.want and not self.done.done():
            self.done.set_result(True)


async def aio(host, port):
    fam, dst = family(host, port)
    loop = asyncio.get_running_loop()
    want = set(os.urandom(200) for _ in range(50))
    done = loop.create_future()
    tr, proto = await loop.create_datagram_endpoint(
        lambda: Echo(set(want), done), family=fam)
    for d in want:
        tr.sendto(d, dst)
    try:
        await asyncio.wait_for(done, 10)
    except asyncio.TimeoutError:
        pass
    print("asyncio %s %d" % ("ok" if proto.got == 50 else "bad", proto.got))
    tr.close()


def ping(step):
    """One round trip by step(): prints "ok", "bad", "timeout" or the errno."""
    try:
        print("ok" if step() == b"ping" else "bad")
    except socket.timeout:
        print("timeout")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


def once(host, port, rounds):
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    for i in range(rounds):
        if i > 0:
            sys.stdout.flush()
            import time
            time.sleep(1)
        ping(lambda: s.sendto(b"ping", dst) and s.recvfrom(100)[0])


def send(host, port, bind):
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        if bind is not None:
            s.bind((bind, 0))
        s.sendto(b"x", dst)
        print("sent")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


def connected(host, port):
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    ping(lambda: s.connect(dst) or (s.send(b"ping") and s.recv(100)))


def close_early(host, port):
    import time
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    ping(lambda: s.sendto(b"ping", dst) and s.recvfrom(100)[0])
    s.close()
    print("closed")
    sys.stdout.flush()
    time.sleep(3)


def wait_for(go):
    """Output so far out; then up to 20 s for the file go, and 0.3 s more."""
    import time
    sys.stdout.flush()
    for _ in range(200):
        if os.path.exists(go):
            break
        time.sleep(0.1)
    time.sleep(0.3)


def stranger(host, port, go, nonblocking):
    import select
    import time
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setblocking(not nonblocking)

    def recv():
        select.select([s], [], [], 3)
        return s.recv(100)
    s.connect(dst)
    s.send(b"one")
    print("first", "ok" if recv() == b"one" else "bad")
    print("local %d" % s.getsockname()[1])
    wait_for(go)
    s.send(b"two")
    got = recv()
    print("second", "ok" if got == b"two" else "bad: %r" % got)


def reconnect(host, port, go):
    import time
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect(dst)
    for i in range(3):
        if i == 1:
            wait_for(go)
        ping(lambda: s.send(b"ping") and s.recv(100))


def slow(host, port, blocking):
    import select
    import time
    fam, dst = family(host, port)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setblocking(blocking)
    t = time.monotonic()
    s.sendto(b"far", dst)
    print("sendto-ms %d" % int((time.monotonic() - t) * 1000))
    # Bound by the send, as the kernel binds: the port is known at once.
    port = s.getsockname()[1]
    r, _, _ = select.select([s], [], [], 5)
    if not r:
        print("timeout")
        return
    try:
        got, src = s.recvfrom(100)
        print("ok" if got == b"far" else "bad")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
    print("port %s" % ("same" if port != 0 and s.getsockname()[1] == port else
                       "%d then %d" % (port, s.getsockname()[1])))
    # connect() binds too, before any datagram.
    c = socket.socket(fam, socket.SOCK_DGRAM)
    c.setblocking(blocking)
    c.connect(dst)
    print("connect port %s" % ("set" if c.getsockname()[1] != 0 else "0"))


def v6only(host, port):
    """An IPV6_V6ONLY socket, blocking then not, sends to host (an IPv6
    address): prints the errno each one meets."""
    import select
    for blocking in (True, False):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setblocking(blocking)
        try:
            s.sendto(b"v6only", (host, port))
            print("%s sent" % ("blocking" if blocking else "nonblocking"))
        except OSError as e:
            print("%s %s" % ("blocking" if blocking else "nonblocking",
                             errno.errorcode.get(e.errno, str(e.errno))))
            continue
        select.select([s], [], [], 5)
        try:
            s.recvfrom(100)
            print("then received")
        except OSError as e:
            print("then %s" % errno.errorcode.get(e.errno, str(e.errno)))


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "echo":
        echo(host, port)
    elif mode == "asyncio":
        asyncio.run(aio(host, port))
    elif mode == "once":
        once(host, port, 1)
    elif mode == "twice":
        once(host, port, 2)
    elif mode == "send":
        send(host, port, sys.argv[4] if len(sys.argv) > 4 else None)
    elif mode == "v6only":
        v6only(host, port)
    elif mode == "slow":
        slow(host, port, sys.argv[4:] == ["blocking"])
    elif mode == "connected":
        connected(host, port)
    elif mode == "close":
        close_early(host, port)
    elif mode == "stranger":
        stranger(host, port, sys.argv[4], sys.argv[5:] == ["nonblocking"])
    elif mode == "reconnect":
        reconnect(host, port, sys.argv[4])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
