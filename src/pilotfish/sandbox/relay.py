"""Host access to the ingress gateway: `python -m pilotfish.sandbox.relay fd:N tcp:IP:PORT`.

`pilotfish up` binds 127.0.0.1:<ingress port> in the root namespace and hands the listening socket
(inherited fd N) to this relay, which it starts *inside* the gateway pod's namespace. Accepted
connections therefore come from the root namespace's loopback, while every upstream socket is created in
the gateway pod, whose routing table knows only the pod and service ranges: even a wrong target cannot
send a packet off the machine, and the root namespace gets no link, route or address
(sandbox-networking.md, "Host access").

Each connection is copied both ways with half-close passed on (`shutdown(SHUT_WR)` through
`write_eof`) and TCP_NODELAY on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys

CHUNK = 65536


def parse_target(text: str) -> tuple[str, int]:
    """`tcp:10.44.0.10:80` -> ("10.44.0.10", 80); ValueError otherwise."""
    kind, _, rest = text.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"target {text!r} must be tcp:HOST:PORT")
    return host, int(port)


def parse_fd(text: str) -> int:
    kind, _, number = text.partition(":")
    if kind != "fd" or not number.isdigit():
        raise ValueError(f"listener {text!r} must be fd:N (an inherited listening socket)")
    return int(number)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _handle(host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port)
    except OSError:
        writer.transport.abort()
        return
    _nodelay(writer)
    _nodelay(up_writer)
    try:
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
    finally:
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


async def serve(listener: socket.socket, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(lambda r, w: _handle(host, port, r, w), sock=listener,
                                        backlog=256)
    address = listener.getsockname()
    print(f"relay listening on {address[0]}:{address[1]} -> {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m pilotfish.sandbox.relay fd:N tcp:HOST:PORT", file=sys.stderr)
        return 2
    try:
        fd, (host, port) = parse_fd(argv[1]), parse_target(argv[2])
    except ValueError as err:
        print(f"relay: {err}", file=sys.stderr)
        return 2
    listener = socket.socket(fileno=fd)
    listener.setblocking(False)
    asyncio.run(serve(listener, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
