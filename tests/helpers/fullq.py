"""fullq: a TCP listener on 127.0.0.1 that never accepts, its accept queue
full, so that the kernel drops every further SYN and a connect() to it stays
in SYN_SENT: a proxy that never answers the dial. Prints "fullq: listening
on 127.0.0.1:PORT" on stderr once full; ends by SIGTERM, or after 120 s."""
import socket
import sys
import time

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
held = []
# A backlog of 0 holds one connection; the second fills the SYN's way too.
for _ in range(2):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(c)
time.sleep(0.2)
print(f"fullq: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
time.sleep(120)
