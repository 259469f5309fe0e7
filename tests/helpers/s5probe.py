#!/usr/bin/env python3
"""Speak raw bytes to a SOCKS5 server and print what comes back, in hex.

usage: s5probe.py [-6] PORT HEX [HEX ...]
Each HEX argument is sent as its own write, 50 ms apart (so "05 01 00" and
"05" "01" "00" test coalesced and split input). Prints every byte received
until the server closes or 3 s pass with nothing new, then "EOF" if the
server closed the connection, or "OPEN" if it did not.
"""
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    family, host = socket.AF_INET, "127.0.0.1"
    if args and args[0] == "-6":
        family, host = socket.AF_INET6, "::1"
        args = args[1:]
    port = int(args[0])
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((host, port))
    for chunk in args[1:]:
        s.sendall(bytes.fromhex(chunk.replace(" ", "")))
        time.sleep(0.05)
    got = b""
    state = "OPEN"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            state = "RST"
            break
        if not b:
            state = "EOF"
            break
        got += b
    print(got.hex())
    print(state)


if __name__ == "__main__":
    main()
