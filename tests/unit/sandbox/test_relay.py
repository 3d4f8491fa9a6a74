"""The ingress relay on loopback: an inherited listening socket, copies both ways, half-close passed on.

(In the mesh it runs inside the gateway pod's namespace; here both ends are on 127.0.0.1.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.sandbox.relay import parse_fd, parse_target

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_argument_forms() -> None:
    assert parse_target("tcp:10.44.0.10:80") == ("10.44.0.10", 80)
    assert parse_fd("fd:7") == 7
    for bad in ("10.44.0.10:80", "tcp:host:", "tcp::80", "udp:a:1", "tcp:a:70000"):
        with pytest.raises(ValueError, match="tcp:HOST:PORT"):
            parse_target(bad)
    with pytest.raises(ValueError, match="fd:N"):
        parse_fd("3")


@pytest.fixture
def upstream() -> Iterator[int]:
    """Reads until EOF, then answers with what it read, upper-cased (so half-close must be passed on)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def relay(upstream: int) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen([sys.executable, "-m", "pilotfish.sandbox.relay", f"fd:{fd}", f"tcp:127.0.0.1:{upstream}"],
                            pass_fds=[fd], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC})
    listener.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith(f"relay listening on 127.0.0.1:{port} -> 127.0.0.1:{upstream}"), line
        yield port
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        assert proc.stdout is not None
        proc.stdout.close()


def test_relay_copies_both_ways_and_passes_half_close(relay: int) -> None:
    payload = os.urandom(300_000).hex().encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", relay), timeout=10) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
        assert received == payload.upper()


def test_relay_closes_when_the_target_refuses() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    listener = socket.create_server(("127.0.0.1", 0))
    port, fd = listener.getsockname()[1], listener.fileno()
    proc = subprocess.Popen([sys.executable, "-m", "pilotfish.sandbox.relay", f"fd:{fd}", f"tcp:127.0.0.1:{dead_port}"],
                            pass_fds=[fd], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC})
    listener.close()
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        with conn, contextlib.suppress(ConnectionResetError):  # EOF or RST: either way, closed
            assert conn.recv(1) == b""
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_relay_usage_errors() -> None:
    done = subprocess.run([sys.executable, "-m", "pilotfish.sandbox.relay", "3", "x"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=30)
    assert done.returncode == 2 and "fd:N" in done.stderr
