"""Simulated Envoys for the convergence and memory tiers: grpc.aio ADS clients, SotW or delta, that
subscribe and ACK the way Envoy 1.40 does (envoy-runtime-notes.md §1-2).

- SotW: CDS and LDS as wildcards; EDS for the EDS clusters a CDS response names, RDS for the route
  names the listeners' connection managers name (asked again when those names change); every
  response ACKed with its version and nonce.
- Delta: the same subscriptions as delta requests (wildcard CDS/LDS, EDS/RDS by name), every
  response ACKed by nonce.

Each client records, per response, when it was ACKed (wall clock): a change's convergence for a
proxy is its last ACK after the change. Nothing is polled on the server while a change propagates
(polling `/debug/syncz` costs the server more than the pushes it measures).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from pilotfish.xds.resources import TypeUrl

CDS, EDS, LDS, RDS = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
HCM = "type.googleapis.com/" + http_connection_manager_pb2.HttpConnectionManager.DESCRIPTOR.full_name
STREAMS_PER_CHANNEL = 25


def eds_names(clusters: Iterable[any_pb2.Any]) -> list[str]:
    names = []
    for packed in clusters:
        cluster = cluster_pb2.Cluster()
        packed.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.append(cluster.eds_cluster_config.service_name or cluster.name)
    return names


def rds_names(listeners: Iterable[any_pb2.Any]) -> list[str]:
    names = set()
    for packed in listeners:
        listener = listener_pb2.Listener()
        packed.Unpack(listener)
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for network_filter in chain.filters:
                if network_filter.typed_config.type_url == HCM:
                    manager = http_connection_manager_pb2.HttpConnectionManager()
                    network_filter.typed_config.Unpack(manager)
                    if manager.HasField("rds"):
                        names.add(manager.rds.route_config_name)
    return sorted(names)


@dataclass
class FakeEnvoy:
    """One simulated proxy: its node id, flavour, and the ACK times of every response it got."""

    node_id: str
    delta: bool
    acks: list[tuple[str, float]] = field(default_factory=list)
    """(type URL, wall time of the ACK), in order."""
    names: dict[str, list[str]] = field(default_factory=lambda: {EDS: [], RDS: []})

    def last_ack_after(self, when: float) -> float | None:
        times = [t for _, t in self.acks if t >= when]
        return max(times) if times else None

    def responses_after(self, when: float) -> Counter[str]:
        """How many responses of each type (CDS, EDS, ...) this proxy got (and ACKed) since `when`."""
        return Counter(TypeUrl(kind).short for kind, t in self.acks if t >= when)

    async def run(self, channel: grpc.aio.Channel, stop: asyncio.Event) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        try:
            call = stub.DeltaAggregatedResources() if self.delta else stub.StreamAggregatedResources()
            await self._stream(call, stop)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            return

    async def _stream(self, call: grpc.aio.StreamStreamCall, stop: asyncio.Event) -> None:
        """Subscribe to CDS and LDS, then ACK every response and follow up on the names it brings."""
        first = self._request(CDS)
        first.node.id = self.node_id
        await call.write(first)
        await call.write(self._request(LDS))
        try:
            while not stop.is_set():
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                follow = self._follow_up(response.type_url, self._resources(response))
                await call.write(self._ack(response))
                self.acks.append((response.type_url, time.time()))
                if follow is not None:
                    await call.write(self._request(*follow))
        finally:
            call.cancel()

    def _request(self, kind: str, names: Sequence[str] = ()) -> Message:
        """A subscription: SotW names every resource it wants, delta only the newly wanted ones."""
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(type_url=kind, resource_names_subscribe=names)
        return discovery_pb2.DiscoveryRequest(type_url=kind, resource_names=names)

    def _ack(self, response: Any) -> Message:
        """SotW ACKs with version, nonce and the full names; delta by nonce alone."""
        if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
            kind, nonce = response.type_url, response.nonce
            return discovery_pb2.DeltaDiscoveryRequest(type_url=kind, response_nonce=nonce)
        return discovery_pb2.DiscoveryRequest(
            type_url=response.type_url,
            version_info=response.version_info,
            response_nonce=response.nonce,
            resource_names=self.names.get(response.type_url, []),
        )

    @staticmethod
    def _resources(response: Any) -> list[any_pb2.Any]:
        if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
            return [r.resource for r in response.resources]
        return list(response.resources)

    def _follow_up(self, kind: str, resources: Iterable[any_pb2.Any]) -> tuple[str, list[str]] | None:
        """After CDS/LDS: the child type (EDS/RDS) and the names to request, when its names changed
        (SotW: all of them; delta: the new ones). Delta responses carry only changed resources, so
        delta clients add names and never unsubscribe."""
        if kind not in (CDS, LDS):
            return None
        child = EDS if kind == CDS else RDS
        found = eds_names(resources) if kind == CDS else rds_names(resources)
        old = self.names[child]
        wanted = sorted(set(old) | set(found)) if self.delta else found
        if wanted == old:
            return None
        self.names[child] = wanted
        return child, sorted(set(wanted) - set(old)) if self.delta else wanted


@contextlib.asynccontextmanager
async def fleet(sock: Path, clients: list[FakeEnvoy]) -> AsyncIterator[list[FakeEnvoy]]:
    """Run `clients` against the ADS server on unix socket `sock` until the block ends."""
    stop = asyncio.Event()
    channels = [
        grpc.aio.insecure_channel(f"unix:{sock}") for _ in range(max(1, len(clients) // STREAMS_PER_CHANNEL))
    ]
    tasks = [asyncio.create_task(c.run(channels[i % len(channels)], stop)) for i, c in enumerate(clients)]
    try:
        yield clients
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def quiet(clients: list[FakeEnvoy], since: float, settle: float = 0.3, timeout: float = 60.0) -> bool:
    """Wait until every client has ACKed something after `since` and none has for `settle` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(settle / 3)
        lasts = [c.last_ack_after(since) for c in clients]
        if all(t is not None for t in lasts) and time.time() - max(t for t in lasts if t) >= settle:
            return True
    return False
