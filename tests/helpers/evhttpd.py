#!/usr/bin/env python3
"""tests/helpers/httpd.py with a listen backlog for many clients at once.

usage: evhttpd.py DIR HOST PORTFILE (as httpd.py)

socketserver listens with a backlog of 5: fifty connections at once overflow
it, and the kernel drops SYNs that are then sent again a second later, which
would swamp the timings of tests/preload_evloop.bats.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httpd  # noqa: E402

httpd.Server.request_queue_size = 1024

if __name__ == "__main__":
    httpd.main()
