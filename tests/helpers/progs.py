#!/usr/bin/env python3
"""Programs that take the unusual paths to a TCP connection, for
tests/preload_programs.bats. Each prints one result line; a body fetched over
HTTP/1.0 is reported as its sha256.

usage:
  progs.py urllib URL              urllib.request GET, sha256 of the body
  progs.py threads N URL           N threads fetch URL at once; prints
                                   "N ok" when every body has the same sha256,
                                   then that sha256
  progs.py fork HOST PORT PATH     the parent resolves HOST, forks; the child
                                   connects and fetches; prints the child's sha
  progs.py gai-null HOST PORT      libc getaddrinfo(HOST, PORT, NULL, ...) via
                                   ctypes (hints really NULL); prints addresses
  progs.py gai-passive PORT        getaddrinfo(NULL, PORT, AI_PASSIVE hints)
  progs.py epoll HOST PORT PATH    non-blocking socket registered in epoll
                                   before connect(); waits for EPOLLOUT, then
                                   fetches through epoll; prints sha256
  progs.py close-range HOST PORT PATH
                                   close_range(3, ~0U, 0), then connect and fetch
  progs.py tfo HOST PORT PATH      sendto(MSG_FASTOPEN) on an unconnected TCP
                                   socket carries the request; prints sha256
"""
import ctypes
import ctypes.util
import errno
import hashlib
import os
import select
import socket
import sys
import threading
import urllib.request

TIMEOUT_S = 20


def body_sha(resp):
    _, _, body = resp.partition(b"\r\n\r\n")
    return hashlib.sha256(body).hexdigest()


def request(host, path):
    return b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode())


def read_all(sock):
    data = b""
    while True:
        b = sock.recv(65536)
        if not b:
            return data
        data += b


def fetch(host, port, path):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.connect((host, port))
        s.sendall(request(host, path))
        return body_sha(read_all(s))


def urllib_sha(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
        return hashlib.sha256(r.read()).hexdigest()


def do_threads(n, url):
    shas = [None] * n
    start = threading.Barrier(n)

    def worker(i):
        start.wait()
        try:
            shas[i] = urllib_sha(url)
        except OSError as e:
            shas[i] = "error %s" % e

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT_S * 2)
    good = len(set(shas)) == 1 and shas[0] is not None and not shas[0].startswith("error")
    print("%d %s" % (n, "ok" if good else "failed"))
    print(shas[0] if good else "\n".join(str(s) for s in shas))


def do_fork(host, port, path):
    # The lookup happens before fork(): with socks5h the child must find the
    # parent's placeholder for HOST in the table it inherited.
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    pid = os.fork()
    if pid == 0:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT_S)
                s.connect(addr)
                s.sendall(request(host, path))
                print(body_sha(read_all(s)), flush=True)
            os._exit(0)
        except OSError as e:
            print(errno.errorcode.get(e.errno, str(e)), flush=True)
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


class AddrInfo(ctypes.Structure):
    pass


AddrInfo._fields_ = [
    ("ai_flags", ctypes.c_int),
    ("ai_family", ctypes.c_int),
    ("ai_socktype", ctypes.c_int),
    ("ai_protocol", ctypes.c_int),
    ("ai_addrlen", ctypes.c_uint32),
    ("ai_addr", ctypes.c_void_p),
    ("ai_canonname", ctypes.c_char_p),
    ("ai_next", ctypes.POINTER(AddrInfo)),
]

AI_PASSIVE = 0x0001


def libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def do_gai(node, service, hints):
    c = libc()
    res = ctypes.POINTER(AddrInfo)()
    c.getaddrinfo.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                              ctypes.POINTER(ctypes.POINTER(AddrInfo))]
    rc = c.getaddrinfo(node.encode() if node is not None else None, service.encode(),
                       ctypes.byref(hints) if hints is not None else None, ctypes.byref(res))
    if rc != 0:
        print("gai error %d" % rc)
        return
    seen = []
    p = res
    while p:
        ai = p.contents
        raw = ctypes.string_at(ai.ai_addr, ai.ai_addrlen)
        if ai.ai_family == socket.AF_INET:
            text = "%s:%d" % (socket.inet_ntop(socket.AF_INET, raw[4:8]),
                              int.from_bytes(raw[2:4], "big"))
        elif ai.ai_family == socket.AF_INET6:
            text = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw[8:24]),
                                int.from_bytes(raw[2:4], "big"))
        else:
            text = "family %d" % ai.ai_family
        if text not in seen:
            seen.append(text)
        p = ai.ai_next
    c.freeaddrinfo(res)
    for t in seen:
        print(t)


def do_epoll(host, port, path):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    ep = select.epoll()
    # Registered before connect(): the library must connect this very fd,
    # never swap another one in behind the epoll registration.
    ep.register(s.fileno(), select.EPOLLOUT)
    rc = s.connect_ex((host, port))
    if rc not in (0, errno.EINPROGRESS):
        print(errno.errorcode.get(rc, str(rc)))
        return
    ev = ep.poll(TIMEOUT_S)
    if not ev or not ev[0][1] & select.EPOLLOUT:
        print("no EPOLLOUT")
        return
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        print(errno.errorcode.get(err, str(err)))
        return
    s.send(request(host, path))
    ep.modify(s.fileno(), select.EPOLLIN)
    data = b""
    while True:
        if not ep.poll(TIMEOUT_S):
            print("epoll timed out")
            return
        try:
            b = s.recv(65536)
        except BlockingIOError:
            continue
        if not b:
            break
        data += b
    print(body_sha(data))


def do_close_range(host, port, path):
    c = libc()
    c.close_range.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
    if c.close_range(3, 0xFFFFFFFF, 0) != 0:
        print("close_range: %s" % os.strerror(ctypes.get_errno()))
        return
    print(fetch(host, port, path))


def do_tfo(host, port, path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.sendto(request(host, path), socket.MSG_FASTOPEN, (host, port))
        print(body_sha(read_all(s)))


def main():
    op, a = sys.argv[1], sys.argv[2:]
    if op == "urllib":
        print(urllib_sha(a[0]))
    elif op == "threads":
        do_threads(int(a[0]), a[1])
    elif op == "fork":
        do_fork(a[0], int(a[1]), a[2])
    elif op == "gai-null":
        do_gai(a[0], a[1], None)
    elif op == "gai-passive":
        h = AddrInfo()
        h.ai_flags = AI_PASSIVE
        h.ai_socktype = socket.SOCK_STREAM
        do_gai(None, a[0], h)
    elif op == "epoll":
        do_epoll(a[0], int(a[1]), a[2])
    elif op == "close-range":
        do_close_range(a[0], int(a[1]), a[2])
    elif op == "tfo":
        do_tfo(a[0], int(a[1]), a[2])
    else:
        sys.exit("progs.py: unknown operation " + op)


if __name__ == "__main__":
    main()
