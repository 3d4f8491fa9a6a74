"""A deliberately tiny ADS server (SotW and delta) for testing the agent against a real Envoy.

It serves one fixed snapshot: a listener on 127.0.0.1:<port> whose RDS route sends everything to an
EDS cluster pointing at one local backend. It answers every request that is not an ACK and records the
node each stream announced, so tests can check what the agent's bootstrap told the control plane.
The real discovery server lives in `pilotfish.server`; this fake only has to get Envoy to LIVE.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2  # noqa: F401  (registers the type)
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
WILDCARD_TYPES = (CDS, LDS)
VERSION = "1"

CLUSTER = "backend"
ACCESS_LOG_FORMAT = "access %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%\n"
ROUTE = "r1"
LISTENER = "proxy"


def _any(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _parse(payload: dict[str, Any], message: Message) -> any_pb2.Any:
    return _any(json_format.ParseDict(payload, message))


def snapshot(listen_port: int, backend_port: int) -> dict[str, dict[str, any_pb2.Any]]:
    """type_url -> name -> resource: one listener, route, EDS cluster and endpoint."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": LISTENER,
        "rds": {"route_config_name": ROUTE, "config_source": {"ads": {}, "resource_api_version": "V3"}},
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                },
            }
        ],
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    listener = {
        "name": LISTENER,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }
    route = {
        "name": ROUTE,
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": CLUSTER}}],
            }
        ],
    }
    cluster = {
        "name": CLUSTER,
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
    }
    endpoint = {
        "cluster_name": CLUSTER,
        "endpoints": [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {
                                "socket_address": {"address": "127.0.0.1", "port_value": backend_port}
                            }
                        }
                    }
                ]
            }
        ],
    }
    return {
        LDS: {LISTENER: _parse(listener, listener_pb2.Listener())},
        RDS: {ROUTE: _parse(route, route_pb2.RouteConfiguration())},
        CDS: {CLUSTER: _parse(cluster, cluster_pb2.Cluster())},
        EDS: {CLUSTER: _parse(endpoint, endpoint_pb2.ClusterLoadAssignment())},
    }


@dataclass
class FakeAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    resources: dict[str, dict[str, any_pb2.Any]]
    nodes: list[base_pb2.Node] = field(default_factory=list)
    """The node of every stream, in connection order (Envoy sends it on the first message only)."""
    flavours: list[str] = field(default_factory=list)
    _nonces: itertools.count[int] = field(default_factory=itertools.count)

    def _select(self, type_url: str, names: list[str]) -> list[tuple[str, any_pb2.Any]]:
        available = self.resources.get(type_url, {})
        wanted = names if names and type_url not in WILDCARD_TYPES else sorted(available)
        return [(name, available[name]) for name in wanted if name in available]

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        self.flavours.append("sotw")
        answered: dict[str, tuple[str, ...]] = {}
        async for request in request_iterator:
            if request.HasField("node"):
                self.nodes.append(request.node)
            names = tuple(sorted(request.resource_names))
            if request.HasField("error_detail") or (
                request.response_nonce and answered.get(request.type_url) == names
            ):
                continue  # a NACK or an ACK: nothing new to send
            answered[request.type_url] = names
            yield discovery_pb2.DiscoveryResponse(
                version_info=VERSION,
                type_url=request.type_url,
                nonce=str(next(self._nonces)),
                resources=[resource for _, resource in self._select(request.type_url, list(names))],
            )

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        self.flavours.append("delta")
        seen: set[str] = set()
        async for request in request_iterator:
            if request.HasField("node"):
                self.nodes.append(request.node)
            first = request.type_url not in seen
            seen.add(request.type_url)
            if request.HasField("error_detail") or not (first or request.resource_names_subscribe):
                continue  # a NACK, an ACK or an unsubscription
            selected = self._select(request.type_url, list(request.resource_names_subscribe))
            yield discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=VERSION,
                type_url=request.type_url,
                nonce=str(next(self._nonces)),
                resources=[
                    discovery_pb2.Resource(name=name, version=VERSION, resource=res) for name, res in selected
                ],
            )


async def start_server(servicer: FakeAds, address: str) -> grpc.aio.Server:
    """Serve on `address` (`unix:PATH` or `127.0.0.1:0`); refuse to share a port (SO_REUSEPORT off)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    server.bound_port = port  # type: ignore[attr-defined]
    await server.start()
    return server
