#!/usr/bin/python3
"""Listening sockets under libsocksify.so (tests/preload_bind.bats).

usage: bindcheck.py sides
  Run with LD_PRELOAD and SOCKSIFY_EXCLUDE=none, so that every connect()
  goes through the proxy, also to this program's own listeners. Prints
  key=value lines for the suite to check:
    control_name / target_peer  the tunnelled connection's getsockname()
                                and the peer its target saw (the proxy's
                                outgoing address: the CONNECT reply's BND)
    local_wild / local_lo2      a listener bound to 0.0.0.0 and one bound to
                                127.0.0.2, made while the tunnel is open:
                                "ok" when a connection reached each one
    early_eagain                accept() on the BIND listener before anyone
                                connected, non-blocking: "EAGAIN"
    bind_name                   getsockname() of the listener bound to the
                                control connection's address: the proxy's
    readable                    select() saw that listener readable
    accepted_from / accepted_peer / dialer_name
                                accept()'s address, getpeername() of the
                                accepted socket, and the getsockname() of the
                                connection made to the BIND address
    data                        what went through the accepted connection
usage: bindcheck.py signal
  As sides, a listener bound to the control connection's address: a
  blocking accept() with SIGALRM due in 1 s (a handler that raises, as
  Python's do without SA_RESTART). Prints "interrupted_ms=N" (when the
  handler ran) or "accepted"; then a connection to the BIND address and
  a second accept() (10 s): "then=ok" when it carried the bytes.
usage: bindcheck.py emfile
  As signal, but the blocking accept() runs in a thread, and the program
  uses up every descriptor it may open before a peer connects to the BIND
  address, freeing them a second later; accept() is tried again after
  EMFILE: "emfile=accepted" when it returned the connection,
  "emfile=blocked" when it did not within 5 s; "emfile_said=yes" when it
  said EMFILE meanwhile.
usage: bindcheck.py starved
  A listener bound to the control connection's address listen()s with a
  single descriptor free (the BIND's own connection takes it, so no poke
  can be made then), the rest are freed, and a blocking accept() in a
  thread waits while a peer connects: "starved=accepted" or, after 5 s,
  "starved=blocked".
usage: bindcheck.py refused HOST PORT
  Bind to the address of a tunnelled connection to HOST:PORT and listen():
  prints "listen=ok" or "listen=ERRNONAME".
"""
import errno
import select
import socket
import sys


def fmt(sa):
    return "%s:%d" % (sa[0], sa[1])


def listener(addr):
    s = socket.socket()
    s.bind((addr, 0))
    s.listen(4)
    return s


def reaches(lst):
    """A connection through the proxy to lst's port reaches lst."""
    c = socket.create_connection(("127.0.0.1" if lst.getsockname()[0] == "0.0.0.0"
                                  else lst.getsockname()[0], lst.getsockname()[1]), 10)
    lst.settimeout(10)
    a, _ = lst.accept()
    c.sendall(b"x")
    ok = a.recv(1) == b"x"
    a.close()
    c.close()
    return "ok" if ok else "bad"


def sides():
    # The target of the control connection: our own wildcard listener,
    # made before any tunnel exists.
    target = listener("0.0.0.0")
    control = socket.create_connection(("127.0.0.1", target.getsockname()[1]), 10)
    target.settimeout(10)
    seen, peer = target.accept()
    print("control_name=%s" % fmt(control.getsockname()))
    print("target_peer=%s" % fmt(peer))

    # Program-local listeners made while the tunnel is open.
    print("local_wild=%s" % reaches(listener("0.0.0.0")))
    print("local_lo2=%s" % reaches(listener("127.0.0.2")))

    # The FTP client's way: bind to the control connection's address.
    lst = socket.socket()
    lst.bind((control.getsockname()[0], 0))
    lst.listen(1)
    lst.setblocking(False)
    try:
        lst.accept()
        print("early_eagain=accepted")
    except BlockingIOError as e:
        print("early_eagain=%s" % errno.errorcode[e.errno])
    name = lst.getsockname()
    print("bind_name=%s" % fmt(name))
    dialer = socket.create_connection(name, 10)
    r, _, _ = select.select([lst], [], [], 10)
    print("readable=%s" % ("yes" if r else "no"))
    acc, frm = lst.accept()
    acc.setblocking(True)
    print("accepted_from=%s" % fmt(frm))
    print("accepted_peer=%s" % fmt(acc.getpeername()))
    print("dialer_name=%s" % fmt(dialer.getsockname()))
    dialer.sendall(b"ping")
    got = acc.recv(4)
    acc.sendall(b"pong")
    print("data=%s/%s" % (got.decode(), dialer.recv(4).decode()))
    # One BIND per listen(): nothing more to accept.
    try:
        lst.setblocking(False)
        lst.accept()
        print("second=accepted")
    except BlockingIOError as e:
        print("second=%s" % errno.errorcode[e.errno])


def bind_listener(listening=True):
    """A tunnelled connection to our own listener, and a blocking listener
    bound to its address (a BIND): (target, control, listener)."""
    target = listener("0.0.0.0")
    control = socket.create_connection(("127.0.0.1", target.getsockname()[1]), 10)
    lst = socket.socket()
    lst.bind((control.getsockname()[0], 0))
    if listening:
        lst.listen(1)
    return target, control, lst


def hog_fds():
    """Every descriptor the process may still open, taken: their list."""
    import os
    hog = []
    try:
        for _ in range(100000):
            hog.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    return hog


def interrupted():
    import signal
    import time
    target, control, lst = bind_listener()

    class Alarm(Exception):
        pass

    def ring(signum, frame):
        raise Alarm()
    signal.signal(signal.SIGALRM, ring)
    t = time.monotonic()
    signal.alarm(1)
    try:
        lst.accept()
        print("accepted")
    except Alarm:
        print("interrupted_ms=%d" % int((time.monotonic() - t) * 1000))
    signal.alarm(0)
    dialer = socket.create_connection(lst.getsockname(), 10)
    lst.settimeout(10)
    acc, _ = lst.accept()
    dialer.sendall(b"ping")
    print("then=%s" % ("ok" if acc.recv(4) == b"ping" else "bad"))


def emfile():
    import os
    import threading
    import time
    target, control, lst = bind_listener()
    got = []

    def wait():
        # EMFILE while none is free, as any accept() says it; then again
        for _ in range(100):
            try:
                got.append(lst.accept())
                return
            except OSError as e:
                if e.errno != errno.EMFILE:
                    raise
                got_emfile.append(1)
                time.sleep(0.1)
    got_emfile = []
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    # accept() takes the early poke and waits in the kernel for the next
    time.sleep(0.5)
    dialer = socket.socket()
    hog = hog_fds()
    dialer.connect(lst.getsockname())
    waiter.join(1)
    for f in hog:
        os.close(f)
    waiter.join(5)
    print("emfile=%s" % ("accepted" if got else "blocked"))
    print("emfile_said=%s" % ("yes" if got_emfile else "no"))


def starved():
    import os
    import threading
    import time
    target, control, lst = bind_listener(listening=False)
    hog = hog_fds()
    os.close(hog.pop())
    lst.listen(1)
    for f in hog:
        os.close(f)
    got = []
    waiter = threading.Thread(target=lambda: got.append(lst.accept()), daemon=True)
    waiter.start()
    time.sleep(0.5)
    dialer = socket.create_connection(lst.getsockname(), 10)
    waiter.join(5)
    print("starved=%s" % ("accepted" if got else "blocked"))
    dialer.close()


def refused(host, port):
    control = socket.create_connection((host, port), 10)
    s = socket.socket()
    s.bind((control.getsockname()[0], 0))
    try:
        s.listen(1)
        print("listen=ok")
    except OSError as e:
        print("listen=%s" % errno.errorcode[e.errno])


def main():
    if sys.argv[1] == "sides":
        sides()
    elif sys.argv[1] == "signal":
        interrupted()
    elif sys.argv[1] == "emfile":
        emfile()
    elif sys.argv[1] == "starved":
        starved()
    else:
        refused(sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    main()
