"""Generated resources in the shapes of Envoy's admin API: `/config_dump?include_eds` and
`/clusters?format=json`.

The CLI renders these exactly as it renders a live Envoy's (one renderer, two sources), and the
discovery server's `/debug/config_dump` serves the same shape.
"""

from __future__ import annotations

from typing import Any

from envoy.admin.v3 import clusters_pb2, config_dump_pb2, config_dump_shared_pb2
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

from pilotfish.xds.protos import pack
from pilotfish.xds.resources import ProxyResources


def config_dump_message(
    resources: ProxyResources, version: str, bootstrap: bootstrap_pb2.Bootstrap | None = None
) -> config_dump_pb2.ConfigDump:
    """The ConfigDump Envoy would show after accepting `resources` at `version`, on top of the
    static resources of `bootstrap` (what the agent would start it with)."""
    bootstrap = bootstrap if bootstrap is not None else bootstrap_pb2.Bootstrap()
    clusters = config_dump_shared_pb2.ClustersConfigDump(version_info=version)
    for static in bootstrap.static_resources.clusters:
        clusters.static_clusters.add().cluster.Pack(static)
    for resource in resources.clusters:
        clusters.dynamic_active_clusters.add(version_info=version, cluster=resource.any)
    listeners = config_dump_shared_pb2.ListenersConfigDump(version_info=version)
    for static in bootstrap.static_resources.listeners:
        listeners.static_listeners.add().listener.Pack(static)
    for resource in resources.listeners:
        entry = listeners.dynamic_listeners.add(name=resource.name)
        entry.active_state.version_info = version
        entry.active_state.listener.CopyFrom(resource.any)
    routes = config_dump_shared_pb2.RoutesConfigDump()
    for resource in resources.routes:
        routes.dynamic_route_configs.add(version_info=version, route_config=resource.any)
    endpoints = config_dump_shared_pb2.EndpointsConfigDump()
    for resource in resources.endpoints:
        endpoints.dynamic_endpoint_configs.add(version_info=version, endpoint_config=resource.any)
    dump = config_dump_pb2.ConfigDump()
    for section in (
        config_dump_pb2.BootstrapConfigDump(bootstrap=bootstrap),
        clusters,
        listeners,
        routes,
        endpoints,
    ):
        dump.configs.append(pack(section))
    return dump


def config_dump(
    resources: ProxyResources, version: str, bootstrap: bootstrap_pb2.Bootstrap | None = None
) -> dict[str, Any]:
    """As JSON (camelCase field names, `@type` on every Any), like `GET /config_dump?include_eds`."""
    result: dict[str, Any] = json_format.MessageToDict(config_dump_message(resources, version, bootstrap))
    return result


def clusters_status(resources: ProxyResources) -> dict[str, Any]:
    """Like `GET /clusters?format=json`: every endpoint HEALTHY (no health checks are configured)."""
    status = clusters_pb2.Clusters()
    for resource in resources.clusters:
        entry = status.cluster_statuses.add(name=resource.name, added_via_api=True)
        cla = resources.endpoints.by_name.get(resource.name)
        assignment = cla.message if cla is not None else resource.message.load_assignment
        for group in assignment.endpoints:
            for lb in group.lb_endpoints:
                host = entry.host_statuses.add(weight=lb.load_balancing_weight.value or 1)
                host.address.CopyFrom(lb.endpoint.address)
                host.health_status.eds_health_status = 1  # HEALTHY
    result: dict[str, Any] = json_format.MessageToDict(status)
    return result
