#!/usr/bin/env python3
"""Serve a directory over HTTP on loopback for the end-to-end tests.

usage: httpd.py DIR HOST PORTFILE
Binds HOST (127.0.0.1 or ::1) on an ephemeral port, writes the port to
PORTFILE once listening, and serves DIR until it is killed.
"""
import functools
import http.server
import os
import socket
import socketserver
import sys


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind() looks up the FQDN of the bound address: a
        # DNS query for ::1 that the tests neither need nor want.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main():
    root, host, portfile = sys.argv[1:4]
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    handler = functools.partial(Quiet, directory=root)
    srv = Server((host, 0), handler)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()
