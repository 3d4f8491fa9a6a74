"""Fake ADS clients (grpc.aio) that speak SotW or delta like Envoy, for in-process server tests.

They send exactly what a test tells them to and hand back each response; `sentinel()` gives tests a
deterministic way to prove that the server did *not* answer a request: it sends a request that is
always answered, and the next response must be that answer (a stream is handled in order).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TIMEOUT = 5.0
_sentinels = itertools.count(1)


def node(node_id: str, metadata: Mapping[str, Any] | None = None) -> base_pb2.Node:
    n = base_pb2.Node(id=node_id, cluster="test", user_agent_name="envoy")
    v = n.user_agent_build_version.version
    v.major_number, v.minor_number, v.patch = 1, 40, 0
    if metadata:
        s = struct_pb2.Struct()
        s.update(dict(metadata))
        n.metadata.CopyFrom(s)
    return n


def names_of(response: discovery_pb2.DiscoveryResponse | discovery_pb2.DeltaDiscoveryResponse) -> list[str]:
    """Resource names in a response (unpacking the Any just enough to read `name`/`cluster_name`)."""
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.endpoint.v3 import endpoint_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.config.route.v3 import route_pb2

    types = {
        CDS: cluster_pb2.Cluster,
        EDS: endpoint_pb2.ClusterLoadAssignment,
        LDS: listener_pb2.Listener,
        RDS: route_pb2.RouteConfiguration,
    }
    out = []
    for item in response.resources:
        if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
            out.append(item.name)
            continue
        message = types[response.type_url]()
        item.Unpack(message)
        out.append(message.cluster_name if response.type_url == EDS else message.name)
    return out


class SotwClient:
    def __init__(
        self, channel: grpc.aio.Channel, node_id: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.node = node(node_id, metadata)
        self.call: Any = None
        self._first = True

    async def open(self) -> SotwClient:
        self.call = self.stub.StreamAggregatedResources()
        self._first = True
        return self

    async def send(
        self,
        type_url: str,
        version: str = "",
        nonce: str = "",
        names: Sequence[str] = (),
        error: str | None = None,
    ) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, version_info=version, response_nonce=nonce, resource_names=list(names)
        )
        if self._first:
            request.node.CopyFrom(self.node)
            self._first = False
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=13, message=error))
        await self.call.write(request)

    async def recv(self) -> discovery_pb2.DiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert response is not grpc.aio.EOF, "stream ended"
        return response

    async def ack(self, response: discovery_pb2.DiscoveryResponse, names: Sequence[str] = ()) -> None:
        await self.send(response.type_url, response.version_info, response.nonce, names)

    async def sentinel(self, type_url: str, version: str, names: Sequence[str] = ()) -> None:
        """Re-open `type_url` (empty nonce: always answered) and check that the next response is that one."""
        await self.send(type_url, version, "", names)
        response = await self.recv()
        assert response.type_url == type_url, (
            f"unexpected extra response {response.type_url} before the sentinel"
        )

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()


class DeltaClient:
    def __init__(self, channel: grpc.aio.Channel, node_id: str) -> None:
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.node = node(node_id)
        self.call: Any = None
        self._first = True

    async def open(self) -> DeltaClient:
        self.call = self.stub.DeltaAggregatedResources()
        self._first = True
        return self

    async def send(
        self,
        type_url: str,
        nonce: str = "",
        subscribe: Sequence[str] = (),
        unsubscribe: Sequence[str] = (),
        initial: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            response_nonce=nonce,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=dict(initial or {}),
        )
        if self._first:
            request.node.CopyFrom(self.node)
            self._first = False
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=13, message=error))
        await self.call.write(request)

    async def recv(self) -> discovery_pb2.DeltaDiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert response is not grpc.aio.EOF, "stream ended"
        return response

    async def ack(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None:
        await self.send(response.type_url, response.nonce)

    async def sentinel(self) -> None:
        """Subscribe to a missing route: always answered (with its removal), and that must come next."""
        name = f"sentinel-{next(_sentinels)}"
        await self.send(RDS, subscribe=[name])
        response = await self.recv()
        assert response.type_url == RDS and list(response.removed_resources) == [name], (
            f"unexpected extra response {response.type_url} before the sentinel"
        )
        await self.send(RDS, unsubscribe=[name])

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
