#!/usr/bin/env python3
"""sdcheck.py: the service manager's side of socksifyd's systemd protocols,
for tests/systemd.bats.

  sdcheck.py pass PORTFILE PID SPEC[,SPEC...] CMD...
      Opens one socket per SPEC (tcp4, tcp6: listening on 127.0.0.1:0 or
      [::1]:0; udp: a datagram socket; unlistened: TCP, bound, not
      listening), writes "SPEC PORT" lines to PORTFILE, puts them on
      descriptors 3, 4, ... and execs CMD with LISTEN_FDS, LISTEN_FDNAMES
      (each SPEC's name) and LISTEN_PID (PID, or "self": this process,
      which CMD becomes).
  sdcheck.py notify ADDR OUT
      Binds an AF_UNIX datagram socket at ADDR (a path, or @name for the
      abstract namespace) and appends each message to OUT as one line, its
      newlines as '|', for 60 s at most.
  sdcheck.py deaf ADDR OUT
      The same socket, never read (a manager that stopped reading: its
      queue fills); writes "bound" to OUT, then sleeps 60 s.
"""
import os
import socket
import sys
import time


def make(spec):
    if spec == "tcp6":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.listen(16)
    elif spec == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        if spec != "unlistened":
            s.listen(16)
    return s


def pass_fds(portfile, pid, specs, cmd):
    socks = [make(s) for s in specs]
    with open(portfile, "w") as f:
        for spec, s in zip(specs, socks):
            f.write("%s %d\n" % (spec, s.getsockname()[1]))
    fds = [s.detach() for s in socks]
    # Out of the way first: 3, 4, ... may be among them.
    high = [os.dup(fd) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)
    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(specs))
    env["LISTEN_FDNAMES"] = ":".join(specs)
    env["LISTEN_PID"] = str(os.getpid()) if pid == "self" else pid
    os.execvpe(cmd[0], cmd, env)


def notify(addr, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
    s.settimeout(1)
    end = time.time() + 60
    with open(out, "a") as f:
        f.write("bound\n")
        f.flush()
        while time.time() < end:
            try:
                m = s.recv(4096)
            except socket.timeout:
                continue
            f.write(m.decode(errors="replace").replace("\n", "|") + "\n")
            f.flush()


def deaf(addr, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
    with open(out, "a") as f:
        f.write("bound\n")
    time.sleep(60)


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "pass":
        pass_fds(a[1], a[2], a[3].split(","), a[4:])
    elif len(a) == 3 and a[0] == "notify":
        notify(a[1], a[2])
    elif len(a) == 3 and a[0] == "deaf":
        deaf(a[1], a[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
