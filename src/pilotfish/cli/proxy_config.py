"""`pilotfish proxy-config`: istioctl's proxy-config tables and JSON/YAML for one Envoy.

    pilotfish proxy-config listener <pod>[.<ns>] (-f dump.json | --admin URL|unix:PATH | --manifests DIR)
        [--address IP] [--port N] [--type HTTP|TCP] [-o short|json|yaml] [--profile 1.3|modern]

Subcommands and aliases follow istioctl: listener|listeners|l, route|routes|r, cluster|clusters|c,
endpoint|endpoints|ep, bootstrap|b, secret|s, ecds, eds, all. `--profile 1.3` (the default) prints the
istioctl 1.3 formats the seed shows; `--profile modern` prints today's istioctl formats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from pilotfish.cli.dump_sources import DumpSource, SourceError, select_source
from pilotfish.inspect import views
from pilotfish.inspect.clusters import ClusterFilter
from pilotfish.inspect.configdump import ConfigDumpError
from pilotfish.inspect.endpoints import EndpointFilter
from pilotfish.inspect.full import AllFilters
from pilotfish.inspect.listeners import ListenerFilter
from pilotfish.inspect.profile import DEFAULT_PROFILE, OUTPUT_FORMATS, PROFILES, OutputFormat, Profile
from pilotfish.inspect.routes import RouteFilter

F = TypeVar("F", bound=Callable[..., Any])

ALIASES = {
    "listeners": "listener",
    "l": "listener",
    "routes": "route",
    "r": "route",
    "clusters": "cluster",
    "c": "cluster",
    "endpoints": "endpoint",
    "ep": "endpoint",
    "b": "bootstrap",
    "secrets": "secret",
    "s": "secret",
}


class _AliasGroup(click.Group):
    """Accept istioctl's short and plural subcommand names."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest


@click.group(name="proxy-config", cls=_AliasGroup, context_settings={"help_option_names": ["-h", "--help"]})
def proxy_config() -> None:
    """Show an Envoy's listeners, routes, clusters, endpoints... the way istioctl proxy-config does.

    The config comes from a saved dump (-f), a running Envoy's admin API (--admin) or the manifests
    pilotfish would build it from (--manifests).
    """


def _source_options(output_default: str = "short") -> Callable[[F], F]:
    """The pod argument and the flags every subcommand shares."""

    def decorate(func: F) -> F:
        options = [
            click.argument("pod", required=False),
            click.option("-n", "--namespace", default=None, help="Namespace of the pod (default: default)."),
            click.option(
                "-f",
                "--file",
                "files",
                multiple=True,
                metavar="FILE",
                help="Saved Envoy /config_dump (and optionally /clusters?format=json) output.",
            ),
            click.option(
                "--admin", default=None, metavar="URL", help="Envoy admin: http://host:port or unix:PATH."
            ),
            click.option(
                "--manifests",
                multiple=True,
                metavar="PATH",
                help="Build the config offline from these manifests.",
            ),
            click.option(
                "--profile",
                type=click.Choice(PROFILES),
                default=DEFAULT_PROFILE,
                show_default=True,
                help="Which istioctl's format to print: 1.3 (the seed's) or modern.",
            ),
            click.option(
                "-o",
                "--output",
                type=click.Choice(OUTPUT_FORMATS),
                default=output_default,
                show_default=True,
                help="Table (short) or the resources as JSON/YAML.",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _verbose_option(func: F) -> F:
    return click.option(
        "--verbose/--no-verbose",
        default=True,
        show_default=True,
        help="Modern profile: one row per filter chain / route instead of per listener / route config.",
    )(func)


def _run(render: Callable[[DumpSource], str], **flags: Any) -> None:
    """Pick the source, render, print; user-facing failures become one `Error:` line and exit 1."""
    try:
        source = select_source(
            files=flags["files"],
            admin=flags["admin"],
            manifests=flags["manifests"],
            pod=flags["pod"],
            namespace=flags["namespace"],
        )
        text = render(source)
    except (SourceError, ConfigDumpError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(text, nl=False)


def _profile(value: str) -> Profile:
    return "modern" if value == "modern" else "1.3"


def _output(value: str) -> OutputFormat:
    return "json" if value == "json" else "yaml" if value == "yaml" else "short"


@proxy_config.command()
@_source_options()
@click.option("--address", default="", help="Only listeners on this address.")
@click.option("--port", type=int, default=0, help="Only listeners on this port.")
@click.option("--type", "listener_type", default="", help="Only listeners of this type (HTTP, TCP, ...).")
@_verbose_option
def listener(address: str, port: int, listener_type: str, verbose: bool, **flags: Any) -> None:
    """Listeners (ADDRESS PORT TYPE; modern: per filter chain MATCH and DESTINATION)."""
    flt = ListenerFilter(address=address, port=port, type=listener_type, verbose=verbose)
    _run(
        lambda s: views.listener(s.config_dump(), flt, _profile(flags["profile"]), _output(flags["output"])),
        **flags,
    )


@proxy_config.command()
@_source_options()
@click.option("--name", default="", help="Only the route configuration with this name.")
@_verbose_option
def route(name: str, verbose: bool, **flags: Any) -> None:
    """Route configurations loaded via RDS (and static ones)."""
    flt = RouteFilter(name=name, verbose=verbose)
    _run(
        lambda s: views.route(s.config_dump(), flt, _profile(flags["profile"]), _output(flags["output"])),
        **flags,
    )


@proxy_config.command()
@_source_options()
@click.option("--fqdn", default="", help="Only clusters whose name contains this FQDN.")
@click.option("--port", type=int, default=0, help="Only clusters for this port.")
@click.option("--subset", default="", help="Only clusters of this subset.")
@click.option("--direction", default="", help="Only inbound or outbound clusters.")
def cluster(fqdn: str, port: int, subset: str, direction: str, **flags: Any) -> None:
    """Clusters (SERVICE FQDN PORT SUBSET DIRECTION TYPE)."""
    flt = ClusterFilter(fqdn=fqdn, port=port, subset=subset, direction=direction)
    _run(
        lambda s: views.cluster(s.config_dump(), flt, _profile(flags["profile"]), _output(flags["output"])),
        **flags,
    )


def _endpoint_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--address", default="", help="Only endpoints with this address."),
            click.option("--port", type=int, default=0, help="Only endpoints on this port."),
            click.option("--cluster", "cluster_name", default="", help="Only endpoints of this cluster."),
            click.option("--status", default="", help="Only endpoints with this health status."),
        ]
    ):
        func = option(func)
    return func


@proxy_config.command()
@_source_options()
@_endpoint_options
def endpoint(address: str, port: int, cluster_name: str, status: str, **flags: Any) -> None:
    """Endpoints Envoy knows, with health (from /clusters?format=json)."""
    flt = EndpointFilter(address=address, port=port, cluster=cluster_name, status=status)
    _run(lambda s: views.endpoint(s.clusters_status(), flt, _output(flags["output"])), **flags)


@proxy_config.command()
@_source_options()
@_endpoint_options
def eds(address: str, port: int, cluster_name: str, status: str, **flags: Any) -> None:
    """Endpoints from the config dump's EDS section (modern istioctl's eds view)."""
    flt = EndpointFilter(address=address, port=port, cluster=cluster_name, status=status)
    _run(lambda s: views.eds(s.config_dump(), flt, _output(flags["output"])), **flags)


@proxy_config.command()
@_source_options(output_default="json")
def bootstrap(**flags: Any) -> None:
    """The bootstrap Envoy started with (-o short: Istio and Envoy versions)."""
    _run(lambda s: views.bootstrap_view(s.config_dump(), _output(flags["output"])), **flags)


@proxy_config.command()
@_source_options()
def secret(**flags: Any) -> None:
    """SDS secrets and their certificates."""
    now = datetime.now(UTC)
    _run(lambda s: views.secret(s.config_dump(), _output(flags["output"]), now), **flags)


@proxy_config.command()
@_source_options()
def ecds(**flags: Any) -> None:
    """Extension configs received over ECDS."""
    _run(lambda s: views.ecds_view(s.config_dump(), _output(flags["output"])), **flags)


@proxy_config.command(name="all")
@_source_options()
@click.option("--fqdn", default="", help="Clusters: only names containing this FQDN.")
@click.option("--port", type=int, default=0, help="Clusters, listeners and endpoints on this port.")
@click.option("--subset", default="", help="Clusters: only this subset.")
@click.option("--direction", default="", help="Clusters: only inbound or outbound.")
@click.option("--address", default="", help="Listeners and endpoints: only this address.")
@click.option("--type", "listener_type", default="", help="Listeners: only this type.")
@click.option("--name", default="", help="Routes: only this route configuration.")
@click.option("--cluster", "cluster_name", default="", help="Endpoints: only this cluster.")
@click.option("--status", default="", help="Endpoints: only this health status.")
@click.option("--with-headers", is_flag=True, help="Put a title above each section.")
@_verbose_option
def all_command(
    fqdn: str,
    port: int,
    subset: str,
    direction: str,
    address: str,
    listener_type: str,
    name: str,
    cluster_name: str,
    status: str,
    with_headers: bool,
    verbose: bool,
    **flags: Any,
) -> None:
    """Every summary at once (modern istioctl format; istioctl 1.3 had no `all`)."""
    filters = AllFilters(
        cluster=ClusterFilter(fqdn=fqdn, port=port, subset=subset, direction=direction),
        listener=ListenerFilter(address=address, port=port, type=listener_type, verbose=verbose),
        route=RouteFilter(name=name, verbose=verbose),
        endpoint=EndpointFilter(address=address, port=port, cluster=cluster_name, status=status),
    )
    now = datetime.now(UTC)
    _run(
        lambda s: views.all_view(
            s.config_dump(), filters, _output(flags["output"]), now, with_headers=with_headers
        ),
        **flags,
    )
