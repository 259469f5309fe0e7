#!/usr/bin/env python3
# manyconnect.py N: N threads connect() at once to a listener of its own
# (backlog 4096: the kernel completes each without an accept) and hold
# their sockets; prints "ok=K errno E=K ..." for the outcomes. It raises
# its own soft descriptor limit to 8192 first, as Go's runtime does.
import collections, resource, socket, sys, threading
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (8192 if hard == resource.RLIM_INFINITY else min(8192, hard), hard))
threading.stack_size(256 * 1024)
n = int(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(4096)
port = lst.getsockname()[1]
res = collections.Counter(); lock = threading.Lock(); socks = []
def go():
    s = socket.socket()
    try:
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        r = "ok"
    except OSError as e:
        r = "errno %s" % e.errno
    with lock:
        res[r] += 1; socks.append(s)
ts = [threading.Thread(target=go) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join("%s=%d" % kv for kv in sorted(res.items())))
