"""The ADS server in-process over real gRPC, driven by fake clients that speak like Envoy.

Covers the protocol paths Envoy rarely shows on demand: ACK, NACK, stale nonces, reconnect with
versions, subscription changes, push order and make-before-break removal, the send limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from pilotfish.server.ads import AdsServer, PushRequest, add_ads_service, grpc_options
from pilotfish.server.cache import XdsCache
from pilotfish.server.metrics import Metrics, render
from pilotfish.server.protocol import SyncStatus
from tests.ads_clients import CDS, EDS, LDS, RDS, DeltaClient, SotwClient, names_of
from tests.xds_fake import FakeBackend, FakeMesh, cluster_name, route_name

ROUTER = "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local"
SIDECAR = "sidecar~10.0.0.5~app-1.default~default.svc.cluster.local"
A, B, C = cluster_name("a"), cluster_name("b"), cluster_name("c")
ROUTE = route_name(18080)


def spec(route_to: str = "a", clusters: tuple[str, ...] = ("a", "b"), timeout: str = "1s") -> dict[str, Any]:
    return {
        "router": {"port": 18080, "routes": [{"prefix": "/", "weights": {route_to: 100}}]},
        "clusters": {c: {"endpoints": ["127.0.0.1:9001"], "connect_timeout": timeout} for c in clusters},
    }


@dataclass
class Harness:
    backend: FakeBackend
    cache: XdsCache
    metrics: Metrics
    ads: AdsServer
    channel: grpc.aio.Channel

    def set_spec(self, new: dict[str, Any]) -> None:
        mesh = FakeMesh.of(new)
        assert self.cache.set_mesh(mesh)
        self.ads.push_all(PushRequest(mesh.version, 0.0))

    def status(self, proxy_id: str, type_url: str) -> SyncStatus:
        (stream,) = self.cache.streams_of(proxy_id)
        return stream.status(type_url)

    def metric(self, line_prefix: str) -> str:
        text = render(self.metrics.registry).decode()
        return "\n".join(line for line in text.splitlines() if line.startswith(line_prefix))


async def _harness(max_send: int = 32 * 1024 * 1024) -> AsyncIterator[Harness]:
    backend = FakeBackend()
    cache = XdsCache(backend)
    cache.set_mesh(FakeMesh.of(spec()))
    metrics = Metrics()
    ads = AdsServer(cache, metrics, max_send_bytes=max_send, server_id="test")
    server = grpc.aio.server(options=grpc_options(max_send))
    add_ads_service(ads, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(backend, cache, metrics, ads, channel)
    finally:
        await ads.close()
        await channel.close()
        await server.stop(0)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async for harness in _harness():
        yield harness


async def sotw_synced(h: Harness, node_id: str = ROUTER) -> tuple[SotwClient, dict[str, Any]]:
    """Connect and walk the initial sequence Envoy uses; returns the client and the last responses."""
    c = await SotwClient(h.channel, node_id).open()
    await c.send(CDS)
    cds = await c.recv()
    eds_names = [A, B]
    await c.send(EDS, names=eds_names)
    eds = await c.recv()
    await c.ack(cds)
    await c.send(LDS)
    lds = await c.recv()
    await c.ack(eds, eds_names)
    await c.send(RDS, names=[ROUTE])
    rds = await c.recv()
    await c.ack(lds)
    await c.ack(rds, [ROUTE])
    await c.sentinel(LDS, lds.version_info)
    return c, {"cds": cds, "eds": eds, "lds": lds, "rds": rds}


async def test_sotw_initial_sync_and_syncz_status(h: Harness) -> None:
    c, last = await sotw_synced(h)
    assert names_of(last["cds"]) == [A, B]
    assert names_of(last["eds"]) == [A, B]
    assert names_of(last["rds"]) == [ROUTE]
    assert last["cds"].control_plane.identifier == "test"
    # the sentinel re-opened LDS; ack it so every type is synced
    (stream,) = h.cache.streams_of("gw-1.istio-system")
    assert stream.flavor == "sotw"
    assert stream.envoy_version == "1.40.0"
    for type_url in (CDS, EDS, RDS):
        assert h.status("gw-1.istio-system", type_url) is SyncStatus.SYNCED
    assert h.metric("pilot_xds ") == "pilot_xds 1"
    assert 'pilot_xds_pushes{type="cds"} 1' in h.metric("pilot_xds_pushes")
    await c.close()


async def test_sotw_nack_is_recorded_and_not_answered(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pilotfish.ads")
    c = await SotwClient(h.channel, ROUTER).open()
    await c.send(CDS)
    first = await c.recv()
    await c.ack(first)
    h.set_spec(spec(timeout="2s"))
    pushed = await c.recv()
    assert pushed.type_url == CDS
    # NACK: last accepted version, the rejected nonce, error_detail
    await c.send(CDS, first.version_info, pushed.nonce, error="Invalid duration: Expected positive duration")
    await c.sentinel(LDS, "")
    (stream,) = h.cache.streams_of("gw-1.istio-system")
    watch = stream.watches[CDS]
    assert watch.last_nack is not None
    assert watch.last_nack.message == "Invalid duration: Expected positive duration"
    assert watch.last_nack.version == first.version_info
    assert stream.status(CDS) is SyncStatus.NACK
    assert h.metric("pilot_total_xds_rejects") == 'pilot_total_xds_rejects{type="cds"} 1'
    nack_lines = [r.getMessage() for r in caplog.records if " NACK " in r.getMessage()]
    assert nack_lines and nack_lines[0].startswith("ADS:CDS: NACK node=gw-1.istio-system ")
    assert 'message="Invalid duration: Expected positive duration"' in nack_lines[0]
    await c.close()


async def test_sotw_stale_nonce_is_ignored(h: Harness) -> None:
    c = await SotwClient(h.channel, ROUTER).open()
    await c.send(CDS)
    first = await c.recv()
    await c.send(CDS, "", "not-a-nonce-we-sent")
    await c.sentinel(LDS, "")
    (stream,) = h.cache.streams_of("gw-1.istio-system")
    assert stream.watches[CDS].nonce_acked == ""
    assert stream.status(CDS) is SyncStatus.STALE
    assert 'pilot_xds_expired_nonce{type="cds"} 1' in h.metric("pilot_xds_expired_nonce")
    await c.ack(first)
    assert stream.status(CDS) is SyncStatus.STALE  # not yet processed...
    await c.sentinel(RDS, "", [ROUTE])
    assert stream.status(CDS) is SyncStatus.SYNCED
    await c.close()


async def test_sotw_reconnect_with_versions_is_answered(h: Harness) -> None:
    c, last = await sotw_synced(h)
    await c.close()
    c2 = await SotwClient(h.channel, ROUTER).open()
    # Envoy re-sends the versions it holds, empty nonces, full names; EDS first (measured order)
    await c2.send(EDS, last["eds"].version_info, "", [A, B])
    eds = await c2.recv()
    assert eds.type_url == EDS and names_of(eds) == [A, B]
    assert eds.version_info == last["eds"].version_info  # same content, same version across streams
    await c2.send(CDS, last["cds"].version_info)
    cds = await c2.recv()
    assert names_of(cds) == [A, B]
    # a fresh stream does not know what the client holds: EDS follows CDS with a bumped version
    eds_again = await c2.recv()
    assert eds_again.type_url == EDS
    assert eds_again.version_info.startswith(eds.version_info + ".")
    await c2.close()


async def test_sotw_subscription_change_is_answered(h: Harness) -> None:
    c = await SotwClient(h.channel, ROUTER).open()
    await c.send(EDS, names=[A])
    eds = await c.recv()
    assert names_of(eds) == [A]
    await c.ack(eds, [A, B])  # same nonce, a new name
    grown = await c.recv()
    assert names_of(grown) == [A, B]
    await c.ack(grown, [A])  # a name dropped: nothing to send
    await c.sentinel(LDS, "")
    await c.close()


async def test_sotw_push_order_and_make_before_break(h: Harness) -> None:
    c, _ = await sotw_synced(h)
    # route moves from a to a new cluster c, and b disappears, in one change
    h.set_spec(spec(route_to="c", clusters=("a", "c")))
    got = [await c.recv() for _ in range(4)]
    assert [r.type_url for r in got] == [CDS, EDS, RDS, CDS]  # LDS did not change
    cds_union, eds, _rds, cds_final = got
    assert names_of(cds_union) == [A, C, B]  # removed b is kept until the routes moved
    assert set(names_of(eds)) == {A, C}  # the new cluster's endpoints follow at once (b has none now)
    assert names_of(cds_final) == [A, C]
    await c.sentinel(LDS, "")  # and nothing else was sent
    await c.close()


async def test_sotw_cluster_change_forces_fresh_eds(h: Harness) -> None:
    c, last = await sotw_synced(h)
    h.set_spec(spec(timeout="3s"))  # clusters change, endpoints do not
    cds = await c.recv()
    eds = await c.recv()
    assert (cds.type_url, eds.type_url) == (CDS, EDS)
    assert eds.version_info != last["eds"].version_info
    assert eds.version_info.split(".")[0] == last["eds"].version_info  # same content, bumped version
    await c.close()


async def test_sotw_route_change_pushes_only_routers(h: Harness) -> None:
    router, _ = await sotw_synced(h)
    sidecar = await SotwClient(h.channel, SIDECAR).open()
    await sidecar.send(CDS)
    cds = await sidecar.recv()
    await sidecar.ack(cds)
    h.set_spec(spec(route_to="b"))
    rds = await router.recv()
    assert rds.type_url == RDS
    await sidecar.sentinel(LDS, "")  # the sidecar got nothing from that push
    before = h.backend.generate_calls
    h.set_spec(spec(route_to="a"))
    await router.recv()
    # streams are pushed one after another: wait for the sidecar's turn
    (side_status,) = h.cache.streams_of("app-1.default")
    assert h.cache.mesh is not None
    for _ in range(500):
        if side_status.mesh_version == h.cache.mesh.version:
            break
        await asyncio.sleep(0.01)
    await sidecar.sentinel(LDS, "")
    assert h.backend.generate_calls - before == 2  # once per proxy identity, not per type or stream
    await router.close()
    await sidecar.close()


async def test_stream_moves_to_a_mesh_version_only_once_its_sends_are_recorded(h: Harness) -> None:
    """While a push's write is in flight the watches still hold the previous ACKs: the stream must
    not show the new mesh version yet, or syncz/proxy-status readers (and `converge` in the e2e
    tests) would take the proxy for SYNCED with a config it was not even sent."""
    c, _ = await sotw_synced(h)
    (stream,) = h.ads.streams.values()
    status = stream.status
    assert status is not None and status.status(RDS) is SyncStatus.SYNCED
    old = status.mesh_version
    entered, release = asyncio.Event(), asyncio.Event()
    write = stream._write

    async def held_write(type_url: str, response: bytes, summary: dict[str, object]) -> bool:
        entered.set()
        await release.wait()
        return await write(type_url, response, summary)

    stream._write = held_write  # type: ignore[method-assign]
    h.set_spec(spec(route_to="b"))
    await asyncio.wait_for(entered.wait(), 5)
    assert status.mesh_version == old, "the stream claims the new mesh while its write is in flight"
    release.set()
    await c.recv()
    assert h.cache.mesh is not None and status.mesh_version == h.cache.mesh.version
    await c.close()


async def test_unknown_proxy_is_logged_and_served(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pilotfish.ads")
    c = await SotwClient(h.channel, "sidecar~10.0.0.9~unknown-1.default~default.svc.cluster.local").open()
    await c.send(CDS)
    cds = await c.recv()
    assert list(cds.resources) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("ADS: UNKNOWN-PROXY node=unknown-1.default") for m in messages)
    await c.close()


async def test_malformed_node_id_is_rejected(h: Harness) -> None:
    c = await SotwClient(h.channel, "not-a-node-id").open()
    await c.send(CDS)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.recv()
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "4 '~'-separated parts" in (err.value.details() or "")


async def test_oversized_response_is_reported_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pilotfish.ads")
    async for h in _harness(max_send=1024):
        h.cache.set_mesh(
            FakeMesh.of(
                {
                    "clusters": {f"c{i}": {"endpoints": [f"127.0.0.1:{9000 + i}"]} for i in range(40)},
                }
            )
        )
        c = await SotwClient(h.channel, ROUTER).open()
        await c.send(CDS)
        await c.send(LDS)
        lds = await c.recv()
        assert lds.type_url == LDS  # the CDS response was not sent
        (stream,) = h.cache.streams_of("gw-1.istio-system")
        assert "exceeds the send limit of 1024 bytes" in stream.last_error
        assert stream.status(CDS) is SyncStatus.NOT_SENT
        assert (
            h.metric("pilotfish_xds_oversized_responses") == 'pilotfish_xds_oversized_responses{type="cds"} 1'
        )
        assert any(
            r.getMessage().startswith("ADS:CDS: OVERSIZE node=gw-1.istio-system") for r in caplog.records
        )
        await c.close()


# --- delta -------------------------------------------------------------------------------------------


async def delta_synced(h: Harness) -> tuple[DeltaClient, dict[str, Any]]:
    c = await DeltaClient(h.channel, ROUTER).open()
    await c.send(CDS)
    cds = await c.recv()
    await c.send(EDS, subscribe=[A, B])
    eds = await c.recv()
    await c.ack(cds)
    await c.send(LDS)
    lds = await c.recv()
    await c.ack(eds)
    await c.send(RDS, subscribe=[ROUTE])
    rds = await c.recv()
    await c.ack(lds)
    await c.ack(rds)
    await c.sentinel()
    return c, {"cds": cds, "eds": eds, "lds": lds, "rds": rds}


async def test_delta_initial_sync(h: Harness) -> None:
    c, last = await delta_synced(h)
    assert names_of(last["cds"]) == [A, B]
    assert names_of(last["eds"]) == [A, B]
    assert names_of(last["rds"]) == [ROUTE]
    for type_url in (CDS, EDS, LDS):
        assert h.status("gw-1.istio-system", type_url) is SyncStatus.SYNCED
    await c.close()


async def test_delta_push_sends_changes_and_removals_last(h: Harness) -> None:
    c, _ = await delta_synced(h)
    h.set_spec(spec(route_to="c", clusters=("a", "c")))
    cds = await c.recv()
    eds = await c.recv()
    rds = await c.recv()
    cds_removal = await c.recv()
    assert (cds.type_url, eds.type_url, rds.type_url, cds_removal.type_url) == (CDS, EDS, RDS, CDS)
    assert names_of(cds) == [C] and list(cds.removed_resources) == []
    assert names_of(eds) == [C]  # the new cluster's endpoints, before the route that uses it
    assert names_of(rds) == [ROUTE]
    assert names_of(cds_removal) == [] and list(cds_removal.removed_resources) == [B]
    await c.close()


async def test_delta_reconnect_with_held_versions_sends_nothing_new(h: Harness) -> None:
    c, last = await delta_synced(h)
    await c.close()
    c2 = await DeltaClient(h.channel, ROUTER).open()
    held = {r.name: r.version for r in last["cds"].resources}
    await c2.send(CDS, initial=held)
    cds = await c2.recv()
    assert list(cds.resources) == [] and list(cds.removed_resources) == []
    held_eds = {r.name: r.version for r in last["eds"].resources}
    await c2.send(EDS, subscribe=[A, B], initial=held_eds)
    eds = await c2.recv()
    assert list(eds.resources) == []
    await c2.close()


async def test_delta_nack_subscribe_unsubscribe(h: Harness) -> None:
    c, _ = await delta_synced(h)
    h.set_spec(spec(timeout="2s"))
    cds = await c.recv()
    eds = await c.recv()
    assert cds.type_url == CDS and eds.type_url == EDS
    # same endpoint content re-sent with a bumped resource version so the changed clusters finish warming
    assert all("." in r.version for r in eds.resources)
    await c.send(CDS, cds.nonce, error="Invalid duration")
    await c.ack(eds)
    await c.sentinel()
    assert h.status("gw-1.istio-system", CDS) is SyncStatus.NACK
    assert h.status("gw-1.istio-system", EDS) is SyncStatus.SYNCED
    await c.send(EDS, unsubscribe=[B])
    await c.send(EDS, subscribe=[B])
    again = await c.recv()
    assert names_of(again) == [B]
    await c.close()


async def test_delta_cluster_change_forces_eds_resend(h: Harness) -> None:
    c, last = await delta_synced(h)
    h.set_spec(spec(timeout="5s"))
    cds = await c.recv()
    eds = await c.recv()
    assert names_of(cds) == [A, B]
    versions = {r.name: r.version for r in eds.resources}
    before = {r.name: r.version for r in last["eds"].resources}
    assert set(versions) == {A, B}
    assert all(versions[n].split(".")[0] == before[n] and versions[n] != before[n] for n in versions)
    await c.close()
