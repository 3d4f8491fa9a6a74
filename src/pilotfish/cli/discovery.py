"""`pilotfish discovery`: the control plane's xDS server over directories of manifests (pilot's job)."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from pathlib import Path

import click

from pilotfish.server.ads import DEFAULT_MAX_SEND_BYTES
from pilotfish.server.push import DEFAULT_MAX_DELAY, DEFAULT_QUIET
from pilotfish.sources.files import DEFAULT_INTERVAL

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> float:
    """`100ms`, `1.5s`, `2m`, or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (examples: 100ms, 1s, 2m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _duration(_: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from None


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


@click.command("discovery")
@click.option(
    "--manifests",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of Kubernetes/Istio manifests to serve (watched for changes); repeat it to serve "
    "several directories as one input.",
)
@click.option(
    "--grpc",
    "grpc_address",
    default="127.0.0.1:15010",
    show_default=True,
    help="ADS address: host:port (port 0 = any free port) or unix:PATH.",
)
@click.option(
    "--http",
    "http_address",
    default="127.0.0.1:15014",
    show_default=True,
    help="Debug/metrics HTTP address (host:port), or 'off'.",
)
@click.option(
    "--debounce",
    default=_ms(DEFAULT_QUIET),
    show_default=True,
    callback=_duration,
    help="Quiet period after the last change before a push.",
)
@click.option(
    "--debounce-max",
    default=f"{DEFAULT_MAX_DELAY:g}s",
    show_default=True,
    callback=_duration,
    help="Longest delay of a push after the first change of a burst.",
)
@click.option(
    "--poll",
    default=_ms(DEFAULT_INTERVAL),
    show_default=True,
    callback=_duration,
    help="How often the manifests directory is scanned for changes.",
)
@click.option(
    "--max-send-bytes",
    default=DEFAULT_MAX_SEND_BYTES,
    show_default=True,
    type=click.IntRange(1024),
    help="gRPC send limit; larger responses are reported and not sent.",
)
@click.option(
    "--id",
    "server_id",
    default="pilotfish",
    show_default=True,
    help="Control plane id (the PILOT/ISTIOD column of proxy-status).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--enable-test-hooks",
    is_flag=True,
    hidden=True,
    help="Enable /debug/test/* (make the next push carry a resource Envoy rejects).",
)
def discovery(
    manifests: tuple[Path, ...],
    grpc_address: str,
    http_address: str,
    debounce: float,
    debounce_max: float,
    poll: float,
    max_send_bytes: int,
    server_id: str,
    log_level: str,
    enable_test_hooks: bool,
) -> None:
    """Serve Envoy configuration over ADS (SotW and delta) for the manifests in one or more directories."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stderr,
    )
    from pilotfish.server.discovery import DiscoveryConfig, split_host_port

    http = None if http_address.lower() in ("off", "none", "") else http_address
    try:
        if http is not None:
            split_host_port(http)
        if not grpc_address.startswith("unix:"):
            split_host_port(grpc_address)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    config = DiscoveryConfig(
        manifests=manifests,
        grpc_address=grpc_address,
        http_address=http,
        debounce=debounce,
        debounce_max=debounce_max,
        poll_interval=poll,
        max_send_bytes=max_send_bytes,
        server_id=server_id,
        enable_test_hooks=enable_test_hooks,
    )
    try:
        asyncio.run(_serve(config))
    except RuntimeError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)


async def _serve(config: object) -> None:
    from pilotfish.server.backend import PipelineBackend
    from pilotfish.server.discovery import DiscoveryConfig, DiscoveryServer

    assert isinstance(config, DiscoveryConfig)
    try:
        backend = PipelineBackend()
    except ImportError as err:
        raise RuntimeError(f"the config pipeline is not available: {err}") from None
    server = DiscoveryServer(config, backend)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except RuntimeError as err:
        await server.stop(0)
        raise RuntimeError(f"cannot start: {err}") from None
    try:
        await stop.wait()
    finally:
        logging.getLogger("pilotfish.discovery").info("discovery: shutting down")
        await server.stop()
