#!/usr/bin/python3
"""Serve a directory over FTP on loopback for the end-to-end tests.

usage: ftpd.py DIR HOST PORTFILE LOG
Debian's pyftpdlib (python3-pyftpdlib), hence /usr/bin/python3. Anonymous,
read-only; binds HOST on an ephemeral port, writes the port to PORTFILE once
listening, and serves DIR until it is killed. LOG gets one line per data
connection, "data active|passive local=IP:PORT peer=IP:PORT" (for active
mode, peer is where the server connected to: the address of the client's
PORT/EPRT), after pyftpdlib's own log lines. FTPD_PERMIT_FOREIGN=1 lets
a client announce an address other than the one its control connection
comes from (pyftpdlib refuses that by default, as FTP bounce protection;
many servers do not).
"""
import logging
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.servers import FTPServer


def addr(sa):
    return "%s:%d" % (sa[0], sa[1])


class LoggedDTP(DTPHandler):
    def __init__(self, sock, cmd_channel):
        mode = "passive" if cmd_channel._dtp_acceptor is not None else "active"
        DTPHandler.__init__(self, sock, cmd_channel)
        logging.info("data %s local=%s peer=%s", mode, addr(sock.getsockname()),
                     addr(sock.getpeername()))


def main():
    root, host, portfile, log = sys.argv[1:5]
    logging.basicConfig(filename=log, level=logging.INFO, format="%(message)s")
    auth = DummyAuthorizer()
    auth.add_anonymous(root)
    handler = FTPHandler
    handler.authorizer = auth
    handler.dtp_handler = LoggedDTP
    handler.permit_foreign_addresses = os.environ.get("FTPD_PERMIT_FOREIGN") == "1"
    srv = FTPServer((host, 0), handler)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.address[1])
    os.rename(tmp, portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()
