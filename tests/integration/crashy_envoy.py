"""Stands in for Envoy in crash-loop tests: answers one admin `/ready` with LIVE, then exits.

The exit status comes from $CRASHY_EXIT_STATUS (default 3). Only the admin unix socket of the bootstrap
given with `-c` is used; the socket file is left behind on purpose, as a crashed Envoy leaves it.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> int:
    config = sys.argv[sys.argv.index("-c") + 1]
    with open(config) as file:
        path = json.load(file)["admin"]["address"]["pipe"]["path"]
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nLIVE\n")
    print("crashy envoy: exiting", file=sys.stderr)
    return int(os.environ.get("CRASHY_EXIT_STATUS", "3"))


if __name__ == "__main__":
    sys.exit(main())
