"""One function per `proxy-config` subcommand: documents + filters + profile + output format -> text.

This is the seam the CLI (and anything else that wants istioctl-shaped text, such as a proxy-status diff)
calls; the per-resource modules hold the rules. Each function returns the complete stdout text.
"""

from __future__ import annotations

from datetime import datetime

from pilotfish.inspect import bootstrap, clusters, ecds, endpoints, full, listeners, routes, secrets
from pilotfish.inspect.clusters import ClusterFilter
from pilotfish.inspect.configdump import ClustersStatus, ConfigDump
from pilotfish.inspect.endpoints import EndpointFilter
from pilotfish.inspect.listeners import ListenerFilter
from pilotfish.inspect.profile import OutputFormat, Profile
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.render import go_json, go_yaml, jsonpb_indent, resources_output
from pilotfish.inspect.routes import RouteFilter


def listener(dump: ConfigDump, flt: ListenerFilter, profile: Profile, output: OutputFormat) -> str:
    if output == "short":
        return listeners.summary(dump, flt, profile)
    return resources_output(listeners.objects(dump, flt, profile), output)


def route(dump: ConfigDump, flt: RouteFilter, profile: Profile, output: OutputFormat) -> str:
    if output == "short":
        return routes.summary(dump, flt, profile)
    return resources_output(routes.objects(dump, flt), output)


def cluster(dump: ConfigDump, flt: ClusterFilter, profile: Profile, output: OutputFormat) -> str:
    if output == "short":
        return clusters.summary(dump, flt, profile)
    return resources_output(clusters.objects(dump, flt), output)


def endpoint(status: ClustersStatus, flt: EndpointFilter, output: OutputFormat) -> str:
    """From `/clusters?format=json`; the same in both profiles."""
    if output == "short":
        return endpoints.summary(status, flt)
    return resources_output(endpoints.objects(status, flt), output)


def eds(dump: ConfigDump, flt: EndpointFilter, output: OutputFormat) -> str:
    if output == "short":
        return endpoints.eds_summary(dump, flt)
    return resources_output(endpoints.eds_objects(dump, flt), output)


def bootstrap_view(dump: ConfigDump, output: OutputFormat) -> str:
    """`bootstrap` prints JSON unless asked for the `short` version summary (istioctl's default is json)."""
    if output == "short":
        return bootstrap.summary(dump)
    value = bootstrap.dump_object(dump)
    return go_yaml(value) + "\n" if output == "yaml" else jsonpb_indent(value) + "\n"


def secret(dump: ConfigDump, output: OutputFormat, now: datetime) -> str:
    if output == "short":
        return secrets.summary(dump, now)
    value = secrets.dump_object(dump)
    return go_yaml(value) + "\n" if output == "yaml" else jsonpb_indent(value) + "\n"


def ecds_view(dump: ConfigDump, output: OutputFormat) -> str:
    if output == "short":
        return ecds.summary(dump)
    value = ecds.dump_object(dump)
    return go_yaml(value) + "\n" if output == "yaml" else go_json(value, html_escape=False) + "\n"


def all_view(
    dump: ConfigDump, filters: full.AllFilters, output: OutputFormat, now: datetime, *, with_headers: bool
) -> str:
    if output == "short":
        return full.summary(dump, filters, now, with_headers=with_headers)
    return resources_output(normalize(dump.raw, "envoy.admin.v3.ConfigDump"), output)
