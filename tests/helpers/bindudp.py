#!/usr/bin/env python3
"""BIND and UDP ASSOCIATE test clients for tests/server_bind_udp.bats.

usage: bindudp.py echo HOST PORTFILE LOGFILE [from]
           UDP echo server; logs each payload's sha256 and length, or with
           "from" "from IP:PORT LEN" (the sender: tests/preload_udp.bats)
       bindudp.py bind-relay PROXY PORT          BIND, third party connects, 1 MiB each way
       bindudp.py bind-mismatch PROXY PORT       DST.ADDR 127.0.0.2: 127.0.0.1 turned away
       bindudp.py bind-close PROXY PORT          control closes while waiting
       bindudp.py bind-data PROXY PORT           control speaks while waiting
       bindudp.py udp-pysocks PROXY PORT ECHO    PySocks round trips (needs Debian's python3)
       bindudp.py udp-raw PROXY PORT ECHOHOST ECHO CASE
           CASE: frag, foreign-port, foreign-port-hint, foreign-ip, close, last-word,
           last-word-name (to $UDP_NAME),
           domain (to $UDP_NAME); $ECHO_LOG is the echo server's log
       bindudp.py udp-gso PROXY PORT SERVERPID SIZE[,SIZE...]
           bursts queued while the server is stopped (SIGSTOP), both ways,
           to receivers with UDP_GRO: prints how many datagrams each
           receive carried, so one GSO send shows as one receive
Prints "ok ..." lines; any failed check raises (exit status 1).
"""
import hashlib
import ipaddress
import os
import signal
import socket
import struct
import sys
import threading
import time

T = 5  # seconds for every blocking step


def sha(b):
    return hashlib.sha256(b).hexdigest()


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("EOF after %d of %d bytes" % (len(b), n))
        b += c
    return b


def enc_addr(host, port):
    ip = ipaddress.ip_address(host)
    atyp = 1 if ip.version == 4 else 4
    return bytes([atyp]) + ip.packed + struct.pack(">H", port)


def read_addr(s_or_buf, off=None):
    """From a socket (off None) or a buffer: (host, port, bytes used)."""
    if off is None:
        atyp = recvn(s_or_buf, 1)[0]
        if atyp == 1:
            raw = recvn(s_or_buf, 4 + 2)
        elif atyp == 4:
            raw = recvn(s_or_buf, 16 + 2)
        else:
            ln = recvn(s_or_buf, 1)[0]
            raw = bytes([ln]) + recvn(s_or_buf, ln + 2)
        data, off = bytes([atyp]) + raw, 0
    else:
        data = s_or_buf
    atyp = data[off]
    if atyp == 1:
        host, n = socket.inet_ntop(socket.AF_INET, data[off + 1:off + 5]), 4
    elif atyp == 4:
        host, n = socket.inet_ntop(socket.AF_INET6, data[off + 1:off + 17]), 16
    else:
        ln = data[off + 1]
        host, n = data[off + 2:off + 2 + ln].decode(), ln + 1
    port = struct.unpack(">H", data[off + 1 + n:off + 3 + n])[0]
    return host, port, 1 + n + 2


def read_reply(c):
    ver, rep, _ = recvn(c, 3)
    assert ver == 5, "reply VER %d" % ver
    host, port, _ = read_addr(c)
    return rep, host, port


def request(proxy, port, cmd, host, dport):
    fam = socket.AF_INET6 if ":" in proxy else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(T)
    c.connect((proxy, port))
    c.sendall(b"\x05\x01\x00")
    assert recvn(c, 2) == b"\x05\x00"
    c.sendall(b"\x05" + bytes([cmd, 0]) + enc_addr(host, dport))
    return c, read_reply(c)


def closed_soon(s, secs=2.0):
    """True when s sees EOF or a reset within secs."""
    s.settimeout(secs)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# --- servers ---------------------------------------------------------------

def echo(host, portfile, logfile, senders=False):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((host, 0))
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    with open(logfile, "a") as log:
        while True:
            data, peer = s.recvfrom(65535)
            # logged before the echo: whoever has the echo finds the line
            if senders:
                h = peer[0] if fam == socket.AF_INET else "[%s]" % peer[0]
                log.write("from %s:%d %d\n" % (h, peer[1], len(data)))
            else:
                log.write("%s %d\n" % (sha(data), len(data)))
            log.flush()
            s.sendto(data, peer)


# --- BIND ------------------------------------------------------------------

def bind_first(proxy, port, expect):
    c, (rep, host, lport) = request(proxy, port, 2, expect, 0)
    assert rep == 0, "first reply REP %d" % rep
    assert host not in ("0.0.0.0", "::"), "first reply names the wildcard"
    assert lport != 0, "first reply port 0"
    print("ok first reply %s %d" % (host, lport))
    return c, host, lport


def third_party(host, lport, src=None):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.settimeout(T)
    if src is not None:
        t.bind((src, 0))
    t.connect((host, lport))
    return t


def bind_second(c, t):
    rep, host, pport = read_reply(c)
    want = t.getsockname()
    assert rep == 0, "second reply REP %d" % rep
    assert (host, pport) == (want[0], want[1]), \
        "second reply %s:%d, peer is %s:%d" % (host, pport, want[0], want[1])
    print("ok second reply %s %d" % (host, pport))


def pump(a, b, size):
    """size random bytes a->b and b->a at once; checks both checksums."""
    out = {}

    def send(s, key):
        data = os.urandom(size)
        out[key + "-sent"] = sha(data)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)

    def recv(s, key):
        h, n = hashlib.sha256(), 0
        while True:
            b = s.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        out[key + "-got"] = h.hexdigest()

    th = [threading.Thread(target=send, args=(a, "ab")),
          threading.Thread(target=send, args=(b, "ba")),
          threading.Thread(target=recv, args=(b, "ab")),
          threading.Thread(target=recv, args=(a, "ba"))]
    for x in th:
        x.start()
    for x in th:
        x.join(30)
    assert out.get("ab-sent") == out.get("ab-got"), "client->peer checksum"
    assert out.get("ba-sent") == out.get("ba-got"), "peer->client checksum"
    print("ok relayed %d bytes each way, sha256 %s %s" % (size, out["ab-got"][:12], out["ba-got"][:12]))


def bind_relay(proxy, port):
    expect = "::1" if ":" in proxy else "127.0.0.1"
    c, host, lport = bind_first(proxy, port, expect)
    t = third_party(host, lport)
    bind_second(c, t)
    c.settimeout(30)
    t.settimeout(30)
    pump(c, t, 1 << 20)


def bind_mismatch(proxy, port):
    c, host, lport = bind_first(proxy, port, "127.0.0.2")
    bad = third_party(host, lport, "127.0.0.1")
    assert closed_soon(bad), "a connection from 127.0.0.1 was kept"
    c.settimeout(1)
    try:
        got = c.recv(1)
    except socket.timeout:
        got = None
    assert got is None, "second reply sent for the wrong host: %r" % got
    print("ok 127.0.0.1 turned away, still waiting")
    good = third_party(host, lport, "127.0.0.2")
    c.settimeout(T)
    bind_second(c, good)
    c.settimeout(30)
    good.settimeout(30)
    pump(c, good, 65536)


def listener_gone(host, lport):
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        try:
            t = third_party(host, lport)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # queued just as the listener closed: ask again
            time.sleep(0.1)
            continue
        t.close()
        time.sleep(0.1)
    return False


def bind_close(proxy, port):
    c, host, lport = bind_first(proxy, port, "0.0.0.0")
    c.close()
    assert listener_gone(host, lport), "listener still open after the control connection closed"
    print("ok listener closed with the control connection")


def bind_data(proxy, port):
    c, host, lport = bind_first(proxy, port, "0.0.0.0")
    c.sendall(b"x")
    rep, _, _ = read_reply(c)
    assert rep == 1, "REP %d after data while waiting" % rep
    assert closed_soon(c), "control connection not closed"
    assert listener_gone(host, lport), "listener still open"
    print("ok data while waiting: REP 01, closed")


# --- UDP -------------------------------------------------------------------

SIZES = (1, 100, 1400, 8192, 60000)


def udp_pysocks(proxy, port, echo_port):
    import socks
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, proxy, port)
    s.settimeout(T)
    for size in SIZES:
        data = os.urandom(size)
        s.sendto(data, ("127.0.0.1", echo_port))
        got, frm = s.recvfrom(65535)
        assert sha(got) == sha(data), "size %d: checksum" % size
        assert frm == ("127.0.0.1", echo_port), "reply from %r" % (frm,)
        print("ok pysocks %d bytes %s" % (size, sha(got)[:12]))
    s.close()


def udp_hdr(host, port, frag=0):
    if any(ch.isalpha() for ch in host) and ":" not in host:
        n = host.encode()
        return b"\x00\x00" + bytes([frag, 3, len(n)]) + n + struct.pack(">H", port)
    return b"\x00\x00" + bytes([frag]) + enc_addr(host, port)


class Assoc:
    def __init__(self, proxy, port, hint_port=None, src=None):
        fam = socket.AF_INET6 if ":" in proxy else socket.AF_INET
        self.u = socket.socket(fam, socket.SOCK_DGRAM)
        self.u.bind((src or proxy, 0))
        self.u.settimeout(1.5)
        hp = self.u.getsockname()[1] if hint_port is None else hint_port
        zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        self.c, (rep, self.rhost, self.rport) = request(proxy, port, 3, zero, hp)
        assert rep == 0, "UDP ASSOCIATE REP %d" % rep
        assert self.rhost not in ("0.0.0.0", "::"), "relay is the wildcard"
        assert self.rhost == proxy, "relay %s, control on %s" % (self.rhost, proxy)

    def send(self, host, port, data, frag=0, sock=None):
        (sock or self.u).sendto(udp_hdr(host, port, frag) + data, (self.rhost, self.rport))

    def recv(self):
        try:
            b, frm = self.u.recvfrom(70000)
        except (socket.timeout, ConnectionRefusedError):
            return None
        assert frm[:2] == (self.rhost, self.rport), "reply from %r" % (frm,)
        assert b[:3] == b"\x00\x00\x00", "reply header %r" % b[:3]
        host, port, n = read_addr(b, 3)
        return host, port, b[3 + n:]


def echo_log(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def roundtrip(a, host, port, size=1000):
    data = os.urandom(size)
    a.send(host, port, data)
    r = a.recv()
    assert r is not None, "no reply"
    assert sha(r[2]) == sha(data), "checksum"
    return r


def udp_raw(proxy, port, ehost, eport, case):
    log = os.environ["ECHO_LOG"]
    foreign = os.urandom(64)
    if case == "frag":
        a = Assoc(proxy, port, hint_port=0)
        a.send(ehost, eport, foreign, frag=1)
        assert a.recv() is None, "a FRAG=1 datagram was answered"
        r = roundtrip(a, ehost, eport, 60000)
        # A reply from an IPv4-mapped address is named by its IPv4 address.
        ip = ipaddress.ip_address(ehost)
        want = str(getattr(ip, "ipv4_mapped", None) or ip)
        assert (r[0], r[1]) == (want, eport), "reply names %s:%d" % r[:2]
        print("ok FRAG=1 dropped, FRAG=0 relayed (60000 bytes), association kept")
    elif case in ("foreign-port", "foreign-port-hint"):
        a = Assoc(proxy, port, hint_port=None if case.endswith("hint") else 0)
        if case == "foreign-port":
            roundtrip(a, ehost, eport)   # locks the client's port
        other = socket.socket(a.u.family, socket.SOCK_DGRAM)
        other.bind((proxy, 0))
        a.send(ehost, eport, foreign, sock=other)
        time.sleep(0.5)
        roundtrip(a, ehost, eport)
        print("ok client port pinned")
    elif case == "foreign-ip":
        a = Assoc(proxy, port, hint_port=0)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.2", 0))
        a.send(ehost, eport, foreign, sock=other)
        time.sleep(0.5)
        roundtrip(a, ehost, eport)
        print("ok datagram from 127.0.0.2 dropped")
    elif case in ("last-word", "last-word-name"):
        # three datagrams, then the control connection closed at once:
        # all three reach the echo (they were on the relay before the FIN;
        # to a name, $UDP_NAME, they wait for its lookup)
        a = Assoc(proxy, port, hint_port=0)
        want = []
        to = os.environ["UDP_NAME"] if case == "last-word-name" else ehost
        for n in (100, 200, 300):
            data = os.urandom(n)
            want.append("%s %d" % (sha(data), n))
            a.send(to, eport, data)
        a.c.close()
        seen = []
        for _ in range(50):
            with open(log) as f:
                seen = f.read().split("\n")
            if all(w in seen for w in want):
                break
            time.sleep(0.1)
        missing = [w for w in want if w not in seen]
        assert not missing, "not relayed: %s" % missing
        print("ok datagrams sent before the control connection closed relayed")
    elif case == "close":
        a = Assoc(proxy, port, hint_port=0)
        roundtrip(a, ehost, eport)
        a.c.close()
        time.sleep(0.5)
        a.send(ehost, eport, foreign)
        assert a.recv() is None, "relayed after the control connection closed"
        print("ok association ended with the control connection")
    elif case == "domain":
        a = Assoc(proxy, port, hint_port=0)
        name = os.environ.get("UDP_NAME", "localhost")
        for _ in range(2):  # the second one hits the association's cache
            r = roundtrip(a, name, eport, 2000)
        print("ok domain destination relayed, reply from %s:%d" % r[:2])
        return
    else:
        raise SystemExit("unknown case " + case)
    assert sha(foreign) not in echo_log(log), "the dropped datagram reached the target"
    print("ok dropped datagram never reached the target")


# --- GSO: bursts through the relay ------------------------------------------

SOL_UDP, UDP_GRO = 17, 104   # linux/udp.h


def gro_sock(host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setsockopt(SOL_UDP, UDP_GRO, 1)
    s.settimeout(T)
    return s


def gro_recv(s, want):
    """want datagrams from s: (datagrams in order, how many each receive
    carried, their sender). With UDP_GRO a GSO send arrives whole, its
    segment size in a UDP_GRO control message."""
    dgrams, per, frm = [], [], None
    while len(dgrams) < want:
        data, anc, _, frm = s.recvmsg(70000, socket.CMSG_SPACE(4))
        seg = len(data)
        for level, kind, v in anc:
            if level == SOL_UDP and kind == UDP_GRO:
                seg = struct.unpack("i", v[:4])[0]
        parts = [data[i:i + seg] for i in range(0, len(data), seg)] or [b""]
        dgrams += parts
        per.append(len(parts))
    assert len(dgrams) == want, "%d datagrams, %d expected" % (len(dgrams), want)
    return dgrams, per, frm


def stop(pid):
    """SIGSTOP pid and wait until every thread of it is stopped: kill()
    returns before a thread running on another CPU has stopped."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(200):
        states = []
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(s in "Tt" for s in states):
            return
        time.sleep(0.01)
    raise AssertionError("process %d did not stop" % pid)


def udp_gso(proxy, port, pid, sizes):
    a = Assoc(proxy, port)
    a.u.setsockopt(SOL_UDP, UDP_GRO, 1)
    a.u.settimeout(T)
    t1, t2 = gro_sock(proxy), gro_sock(proxy)
    a1, a2 = t1.getsockname()[:2], t2.getsockname()[:2]
    # One datagram each first: the client's port is locked, the outgoing
    # socket exists, and the targets learn where the relay sends from.
    for t, ad in ((t1, a1), (t2, a2)):
        a.send(ad[0], ad[1], b"warm")
        d, _, out = gro_recv(t, 1)
        assert d == [b"warm"], "warm-up %r" % d
    for size in sizes:
        # Client -> targets: a run of 13 to t1 (the last one shorter),
        # 2 to t2, 3 more to t1, queued while the relay is stopped so one
        # wakeup reads them all.
        plan = [a1] * 12 + [a1] + [a2] * 2 + [a1] * 3
        data = [os.urandom(size) for _ in plan]
        data[12] = data[12][:size // 2]
        stop(pid)
        try:
            for ad, d in zip(plan, data):
                a.send(ad[0], ad[1], d)
        finally:
            os.kill(pid, signal.SIGCONT)
        got1, per1, _ = gro_recv(t1, 16)
        got2, per2, _ = gro_recv(t2, 2)
        want1 = [d for ad, d in zip(plan, data) if ad == a1]
        want2 = [d for ad, d in zip(plan, data) if ad == a2]
        assert [sha(x) for x in got1] == [sha(x) for x in want1], "t1 got other bytes"
        assert [sha(x) for x in got2] == [sha(x) for x in want2], "t2 got other bytes"
        print("ok %d to targets: t1 %s t2 %s" % (size, "+".join(map(str, per1)),
                                                "+".join(map(str, per2))))
        # Targets -> client: 5 from t1, 1 from t2, 2 from t1; each reply
        # has its own header, all of one length.
        back = [(t1, a1)] * 5 + [(t2, a2)] + [(t1, a1)] * 2
        data = [os.urandom(size) for _ in back]
        stop(pid)
        try:
            for (t, _), d in zip(back, data):
                t.sendto(d, out)
        finally:
            os.kill(pid, signal.SIGCONT)
        got, per, frm = gro_recv(a.u, len(back))
        assert frm[:2] == (a.rhost, a.rport), "replies from %r" % (frm,)
        for (_, ad), d, g in zip(back, data, got):
            assert g[:3] == b"\x00\x00\x00", "reply header %r" % g[:3]
            host, hport, n = read_addr(g, 3)
            assert (host, hport) == ad, "reply names %s:%d, not %s:%d" % (host, hport, ad[0], ad[1])
            assert sha(g[3 + n:]) == sha(d), "reply bytes differ"
        print("ok %d to the client: %s" % (size, "+".join(map(str, per))))


def udp_burst(proxy, port, pid, count, size):
    """count datagrams of size bytes queued while the relay is stopped, one
    way and then the other: every one arrives, in order. The endpoints'
    own buffers are raised as far as the host lets them, so that what is
    tested is the relay's."""
    def big(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        return s

    def drain(recv):
        got = []
        while len(got) < count:
            r = recv()
            if r is None:
                break
            got.append(r)
        return got

    def t1_recv():
        try:
            return t1.recvfrom(size + 100)[0]
        except socket.timeout:
            return None

    a = Assoc(proxy, port)
    big(a.u)
    t1 = big(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    t1.bind((proxy, 0))
    t1.settimeout(1.5)
    a1 = t1.getsockname()
    a.send(a1[0], a1[1], b"warm")
    d, out = t1.recvfrom(100)
    assert d == b"warm", "warm-up %r" % d
    data = [os.urandom(size) for _ in range(count)]
    stop(pid)
    try:
        for x in data:
            a.send(a1[0], a1[1], x)
    finally:
        os.kill(pid, signal.SIGCONT)
    got = drain(t1_recv)
    assert [sha(x) for x in got] == [sha(x) for x in data[:len(got)]], "other bytes"
    print("%d of %d to the target" % (len(got), count))
    data = [os.urandom(size) for _ in range(count)]
    stop(pid)
    try:
        for x in data:
            t1.sendto(x, out)
    finally:
        os.kill(pid, signal.SIGCONT)
    got = drain(a.recv)
    assert [sha(x) for _, _, x in got] == [sha(x) for x in data[:len(got)]], "other bytes"
    print("%d of %d to the client" % (len(got), count))


def udp_deny_batch(proxy, port, pid, denied):
    """Replies from an allowed and a denied sender, interleaved in one
    batch of the relay: each is judged by its own sender."""
    a = Assoc(proxy, port)
    t1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t1.bind((proxy, 0))
    t1.settimeout(T)
    t3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t3.bind((proxy, denied))
    a1 = t1.getsockname()
    a.send(a1[0], a1[1], b"warm")
    d, out = t1.recvfrom(100)
    assert d == b"warm", "warm-up %r" % d
    data = [os.urandom(500) for _ in range(4)]
    stop(pid)
    try:
        for t, x in zip((t1, t3, t1, t3), data):
            t.sendto(x, out)
    finally:
        os.kill(pid, signal.SIGCONT)
    got = []
    while True:
        r = a.recv()
        if r is None:
            break
        got.append(r)
    assert [(h, p) for h, p, _ in got] == [a1, a1], "replies named %r" % [(h, p) for h, p, _ in got]
    assert [sha(x) for _, _, x in got] == [sha(data[0]), sha(data[2])], "other bytes"
    print("ok 2 of 4 relayed, both the allowed sender's, in order")
    # The other way: the client's datagrams to both, in one batch.
    t3.settimeout(0.5)
    data = [os.urandom(500) for _ in range(4)]
    stop(pid)
    try:
        for ad, x in zip((a1, t3.getsockname(), a1, t3.getsockname()), data):
            a.send(ad[0], ad[1], x)
    finally:
        os.kill(pid, signal.SIGCONT)
    got1 = [t1.recvfrom(1000)[0] for _ in range(2)]
    assert [sha(x) for x in got1] == [sha(data[0]), sha(data[2])], "t1 got other bytes"
    try:
        x = t3.recvfrom(1000)
        raise AssertionError("the denied destination got %d bytes" % len(x[0]))
    except socket.timeout:
        pass
    print("ok 2 of 4 sent, both to the allowed target, in order")


def main():
    a = sys.argv[1:]
    if a[0] == "echo":
        echo(a[1], a[2], a[3], a[4:] == ["from"])
    elif a[0] == "bind-relay":
        bind_relay(a[1], int(a[2]))
    elif a[0] == "bind-mismatch":
        bind_mismatch(a[1], int(a[2]))
    elif a[0] == "bind-close":
        bind_close(a[1], int(a[2]))
    elif a[0] == "bind-data":
        bind_data(a[1], int(a[2]))
    elif a[0] == "udp-pysocks":
        udp_pysocks(a[1], int(a[2]), int(a[3]))
    elif a[0] == "udp-gso":
        udp_gso(a[1], int(a[2]), int(a[3]), [int(x) for x in a[4].split(",")])
    elif a[0] == "udp-burst":
        udp_burst(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
    elif a[0] == "udp-deny-batch":
        udp_deny_batch(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif a[0] == "udp-raw":
        udp_raw(a[1], int(a[2]), a[3], int(a[4]), a[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
