"""The ADS gRPC service (grpc.aio): state-of-the-world and delta streams, pushes in make-before-break order.

One event loop, one task per stream: each stream owns a queue fed by its request reader and by
pushes, and handles one item at a time, so its watch state is never touched concurrently and a push
is never interleaved with a request-driven response. Protocol decisions live in `protocol.py`; this
module performs them.

Push order per stream (perf-and-peers.md §A5, Istio `PushOrder`): CDS -> EDS -> LDS -> RDS, then
cluster removals.
  * After a CDS response that adds or changes EDS clusters, EDS follows at once with a fresh version,
    and includes the new clusters' endpoints (Envoy has already created their EDS watches when it
    processes the EDS response), so they finish warming before the routes that use them arrive.
  * Make before break, removals last: when clusters disappear in the same push where listeners or
    routes change, the first CDS response still carries the removed clusters (SotW: the union of old
    and new; delta: no `removed_resources` yet), and a trailing CDS response after RDS removes them,
    so a route never points at a cluster Envoy has already dropped. EDS removals are deferred likewise.
  * SotW CDS and LDS carry the full set, EDS and RDS the requested names; delta carries changed and
    removed resources only.
  * Request-driven responses use the resources of the last push to that stream, never a newer mesh,
    so a request arriving mid-change cannot jump ahead of the ordered push.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format

from pilotfish.model.names import NodeId
from pilotfish.model.proxy import Proxy
from pilotfish.server.cache import StreamStatus, XdsCache, eds_service_names, type_content
from pilotfish.server.metrics import Metrics
from pilotfish.server.protocol import (
    Decision,
    DeltaRequest,
    DeltaWatch,
    ErrorDetail,
    SotwRequest,
    SotwWatch,
    Verdict,
    delta_changes,
    delta_force,
    delta_on_request,
    delta_on_sent,
    delta_wire_version,
    sotw_on_request,
    sotw_on_sent,
    sotw_version,
)
from pilotfish.xds import wire
from pilotfish.xds.resources import (
    WILDCARD_TYPES,
    ProxyResources,
    Resource,
    ResourceSet,
    TypeUrl,
    pairs_version,
)

log = logging.getLogger("pilotfish.ads")

MAX_RECEIVE_BYTES = 4 * 1024 * 1024
"""Istio's gRPC receive limit (a delta reconnect with very many names can exceed it; see A2/E)."""
PUSH_WINDOW = 100
"""Streams a push round works on at once (see `AdsServer._push_round`); Istio's concurrent push
limit (`PILOT_PUSH_THROTTLE`) defaults to 100 as well. A window of 8 cost an endpoint push to 100
proxies ~50 ms more at p99 (bench convergence tier): each stream's write completes only after a
round trip through gRPC's poller, and a small window serialises those waits."""
DEFAULT_MAX_SEND_BYTES = 32 * 1024 * 1024
"""Our send limit: above Istio's 10 MB "strain" mark, below its 40 MB upper bound. Larger responses
are reported (log, metric, syncz) instead of being sent and failing the stream."""

SUPPORTED: frozenset[str] = frozenset(t.value for t in TypeUrl if t is not TypeUrl.SECRET)
_WILDCARD: frozenset[str] = frozenset(t.value for t in WILDCARD_TYPES)


def grpc_options(max_send_bytes: int = DEFAULT_MAX_SEND_BYTES) -> list[tuple[str, int]]:
    """Server options: no SO_REUSEPORT (a second server on the port must fail, not share it)."""
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", max_send_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


class ResponseBodies:
    """Serialized response bodies (all but version and nonce) by what they contain.

    A push sends the same resources to many streams (every proxy of a shape shares its sets), so
    the resources are packed into a response and serialized once, and each stream's response is
    its own few bytes of version and nonce followed by that body: protobuf parses concatenated
    encodings as one message, and the fields do not overlap. Keys say exactly what a body holds
    (type, names and versions in order, removals), so a body never goes stale; the oldest are
    dropped beyond `limit` bytes.
    """

    def __init__(self, limit: int = 64 * 1024 * 1024) -> None:
        self.limit = limit
        self._bodies: dict[Any, bytes] = {}
        self._bytes = 0

    def get(self, key: Any, build: Callable[[], bytes]) -> bytes:
        body = self._bodies.get(key)
        if body is None:
            body = build()
            self._bodies[key] = body
            self._bytes += len(body)
            while self._bytes > self.limit and len(self._bodies) > 1:
                oldest = next(iter(self._bodies))
                self._bytes -= len(self._bodies.pop(oldest))
        return body


def add_ads_service(servicer: AdsServer, server: grpc.aio.Server) -> None:
    """Register the ADS service on `server`. Like the generated `add_..._to_server`, except that
    responses may also be written already serialized (bytes), which `ResponseBodies` relies on."""
    service = "envoy.service.discovery.v3.AggregatedDiscoveryService"
    handlers = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.StreamAggregatedResources,
            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=_serialized,
        ),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.DeltaAggregatedResources,
            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            response_serializer=_serialized,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def _serialized(response: Any) -> bytes:
    return response if isinstance(response, bytes) else bytes(response.SerializeToString())


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One debounced change: which mesh, when the change entered the server, and why."""

    mesh_version: str
    trigger_time: float
    reason: str = "config"


def short(type_url: str) -> str:
    try:
        return TypeUrl(type_url).short
    except ValueError:
        return type_url.rsplit(".", 1)[-1]


def _fmt(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def log_event(level: int, type_url: str | None, verb: str, **fields: object) -> None:
    """The fixed log grammar: `ADS:<TYPE>: <VERB> key=value ...` (`ADS: <VERB> ...` for the stream)."""
    if not log.isEnabledFor(level):
        return
    prefix = f"ADS:{short(type_url)}:" if type_url else "ADS:"
    log.log(level, "%s %s %s", prefix, verb, " ".join(f"{k}={_fmt(v)}" for k, v in fields.items()))


# --- push planning (pure functions of watch state and resources) ------------------------------------


@dataclass(slots=True)
class Send:
    """One planned response."""

    type_url: TypeUrl
    resources: list[Resource]
    removed: list[str] = field(default_factory=list)
    force: bool = False
    """SotW: identical content sent again under a new version. Delta: names in `resend` get one."""
    resend: frozenset[str] = frozenset()
    reason: str = "push"
    content: str = ""
    """SotW: `type_content(resources)` when the planner already has it (else computed on send)."""


def _changed_clusters(clusters: Iterable[Resource], held: Mapping[str, str]) -> list[Resource]:
    return [r for r in clusters if held.get(r.name) != r.version]


def _selected(resources: ResourceSet, names: frozenset[str]) -> tuple[list[Resource], str]:
    """The resources of a by-name (EDS/RDS) watch, in set order, and their content hash: the set's
    own cached hash when every resource is wanted (the usual case: proxies of one shape share the
    set, so the hash is computed once per push, not once per stream)."""
    selected = [r for r in resources if r.name in names]
    if len(selected) == len(resources):
        return selected, resources.content_version()
    return selected, type_content(selected)


def plan_sotw_push(
    watches: Mapping[str, SotwWatch | DeltaWatch], new: ProxyResources, held_clusters: Mapping[str, Resource]
) -> list[Send]:
    """The responses one SotW stream needs to move to `new`, in push order.

    `held_clusters` is the cluster set of the last CDS response on this stream.
    """
    sends: list[Send] = []
    cds, eds = watches.get(TypeUrl.CLUSTER), watches.get(TypeUrl.ENDPOINT)
    lds, rds = watches.get(TypeUrl.LISTENER), watches.get(TypeUrl.ROUTE)
    cds_send: Send | None = None
    trailing: Send | None = None
    changed_eds: list[str] = []
    if isinstance(cds, SotwWatch) and new.clusters.content_version() != cds.content_sent:
        clusters = list(new.clusters)
        held_versions = {n: r.version for n, r in held_clusters.items()}
        changed_eds = eds_service_names(_changed_clusters(clusters, held_versions))
        removed = [r for n, r in held_clusters.items() if n not in new.clusters.by_name]
        if removed:
            trailing = Send(
                TypeUrl.CLUSTER, clusters, reason="remove-clusters", content=new.clusters.content_version()
            )
            union = clusters + removed
            if type_content(union) != cds.content_sent:
                cds_send = Send(TypeUrl.CLUSTER, union, reason="push-keep-removed")
        else:
            cds_send = Send(TypeUrl.CLUSTER, clusters, content=new.clusters.content_version())
    if cds_send is not None:
        sends.append(cds_send)
    if isinstance(eds, SotwWatch):
        names = eds.names | frozenset(changed_eds) if changed_eds else eds.names
        subset, content = _selected(new.endpoints, names)
        force = bool(changed_eds) and cds_send is not None
        if force or content != eds.content_sent:
            reason = "after-cds" if force else "push"
            sends.append(Send(TypeUrl.ENDPOINT, subset, force=force, reason=reason, content=content))
    if isinstance(lds, SotwWatch) and new.listeners.content_version() != lds.content_sent:
        sends.append(Send(TypeUrl.LISTENER, list(new.listeners), content=new.listeners.content_version()))
    if isinstance(rds, SotwWatch):
        routes, content = _selected(new.routes, rds.names)
        if content != rds.content_sent:
            sends.append(Send(TypeUrl.ROUTE, routes, content=content))
    if trailing is not None:
        if len(sends) == 1 and sends[0] is cds_send:
            sends = [trailing]  # nothing else moves: remove at once
        else:
            sends.append(trailing)
    return sends


def plan_delta_push(watches: Mapping[str, SotwWatch | DeltaWatch], new: ProxyResources) -> list[Send]:
    """The responses one delta stream needs to move to `new`: changed and removed only, in push order."""
    sends: list[Send] = []
    deferred: list[Send] = []
    changed_eds: list[str] = []
    for type_url in (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE):
        watch = watches.get(type_url)
        if not isinstance(watch, DeltaWatch):
            continue
        current = new.of(type_url)
        versions = current.versions()
        resend: frozenset[str] = frozenset()
        if type_url is TypeUrl.ENDPOINT and changed_eds:
            forced = [n for n in changed_eds if n in versions]
            resend = frozenset(n for n in forced if watch.known.get(n) == versions[n])
            watch = delta_force(watch, forced)
        changed, removed = delta_changes(watch, versions)
        resources = [current.by_name[n] for n in changed]
        if type_url is TypeUrl.CLUSTER:
            changed_eds = eds_service_names(resources)
        if type_url in (TypeUrl.CLUSTER, TypeUrl.ENDPOINT) and removed:
            deferred.append(Send(type_url, [], removed, reason="remove"))
            removed = []
        if resources or removed:
            reason = "after-cds" if type_url is TypeUrl.ENDPOINT and changed_eds else "push"
            sends.append(Send(type_url, resources, removed, force=bool(resend), resend=resend, reason=reason))
    return sends + deferred  # removals last: nothing may still point at a removed cluster


# --- streams ----------------------------------------------------------------------------------------

_EOF = object()
_PUSH = object()
_nonces = itertools.count(1)
_conn_ids = itertools.count(1)


class _Stream:
    """What SotW and delta streams share: the queue, identity, snapshot, sending and bookkeeping."""

    flavor = ""

    def __init__(self, server: AdsServer, context: grpc.aio.ServicerContext) -> None:
        self.server = server
        self.cache = server.cache
        self.metrics = server.metrics
        self.context = context
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.status: StreamStatus | None = None
        self.snapshot: ProxyResources | None = None
        self._push: PushRequest | None = None
        self._push_queued = False
        self._push_done: asyncio.Future[None] | None = None
        self._converging: PushRequest | None = None

    # lifecycle -------------------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[Any]) -> None:
        reader = asyncio.create_task(self._read(requests))
        try:
            while True:
                item = await self.events.get()
                if item is _EOF:
                    return
                if item is _PUSH:
                    self._push_queued = False
                    push, self._push = self._push, None
                    try:
                        if push is not None and self.status is not None:
                            await self.push(push)
                    finally:
                        self._pushed()
                    continue
                if isinstance(item, BaseException):
                    raise item
                await self._handle(item)
        finally:
            reader.cancel()
            self._pushed()
            self.server.unregister(self)

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                await self.events.put(request)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the client went away mid-read
            log_event(logging.DEBUG, None, "READ-ERROR", error=err)
        await self.events.put(_EOF)

    def request_push(self, push: PushRequest) -> asyncio.Future[None]:
        """Queue a move to the current mesh (pushes coalesce: only the latest matters).

        The returned future is done once this stream has generated and sent what the push needs (or
        has closed), so the server can push to one stream after another.
        """
        self._push = push
        if self._push_done is None or self._push_done.done():
            self._push_done = asyncio.get_running_loop().create_future()
        if not self._push_queued:
            self._push_queued = True
            self.events.put_nowait(_PUSH)
        return self._push_done

    def _pushed(self) -> None:
        if self._push_done is not None and not self._push_done.done():
            self._push_done.set_result(None)

    async def _open(self, node: base_pb2.Node) -> bool:
        """Identify the proxy from the first request's node. False (stream aborted) when malformed."""
        node_id = node.id
        metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
        try:
            parsed = NodeId.parse(node_id)
        except ValueError as err:
            log_event(logging.WARNING, None, "REJECT", node=node_id, reason=err)
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            return False
        proxy = Proxy(parsed.proxy_type, parsed.ip, parsed.pod_name, parsed.namespace, known=False)
        if self.cache.mesh is not None:
            try:
                proxy = self.cache.proxy_for(node_id, metadata)
            except ValueError as err:
                log_event(logging.WARNING, None, "REJECT", node=node_id, reason=err)
                await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
                return False
        build = node.user_agent_build_version.version
        envoy_version = (
            f"{build.major_number}.{build.minor_number}.{build.patch}" if build.major_number else ""
        )
        conn_id = f"{proxy.proxy_id}-{next(_conn_ids)}"
        self.status = StreamStatus(
            conn_id=conn_id,
            node_id=node_id,
            proxy=proxy,
            flavor=self.flavor,
            connected_at=time.time(),
            metadata=metadata,
            envoy_version=envoy_version,
        )
        self.server.register(self)
        log_event(
            logging.INFO,
            None,
            "CONNECT",
            node=proxy.proxy_id,
            conn=conn_id,
            xds=self.flavor,
            envoy=envoy_version or "?",
            id=node_id,
        )
        if self.cache.mesh is not None:
            self._warn_unknown(proxy)
            self.snapshot = self.cache.resources_for(proxy)
            self.status.mesh_version = self.cache.mesh.version
        return True

    def _warn_unknown(self, proxy: Proxy) -> None:
        if not proxy.known:
            assert self.status is not None
            log_event(
                logging.WARNING,
                None,
                "UNKNOWN-PROXY",
                node=proxy.proxy_id,
                conn=self.status.conn_id,
                reason=f"no workload {proxy.pod_name} in namespace {proxy.namespace}; serving the"
                " minimal config of an unknown proxy",
            )

    async def _refresh(self) -> tuple[ProxyResources, str] | None:
        """Re-resolve the proxy against the current mesh: what it should have now, and the mesh
        version that is from (the stream moves to it only once those sends are recorded, see
        `_started_push`)."""
        assert self.status is not None
        if self.cache.mesh is None:
            return None
        try:
            proxy = self.cache.proxy_for(self.status.node_id, self.status.metadata)
        except ValueError as err:  # the node id was parsable but the pipeline refuses it
            self.status.last_error = str(err)
            log_event(logging.WARNING, None, "REJECT", **self._fields(), reason=err)
            return None
        if proxy != self.status.proxy:
            self.status.proxy = proxy
            self._warn_unknown(proxy)
        return self.cache.resources_for(proxy), self.cache.mesh.version

    # sending ---------------------------------------------------------------------------------------

    def _fields(self) -> dict[str, object]:
        assert self.status is not None
        return {"node": self.status.proxy_id, "conn": self.status.conn_id}

    async def _write(self, type_url: str, response: bytes, summary: dict[str, object]) -> bool:
        """Send one serialized response unless it exceeds the send limit (then report it and send
        nothing)."""
        assert self.status is not None
        size = len(response)
        kind = short(type_url).lower()
        if size > self.server.max_send_bytes:
            self.metrics.oversized.labels(kind).inc()
            self.status.last_error = (
                f"{short(type_url)} response of {size} bytes exceeds the send limit of"
                f" {self.server.max_send_bytes} bytes; not sent"
            )
            log_event(
                logging.ERROR,
                type_url,
                "OVERSIZE",
                **self._fields(),
                bytes=size,
                limit=self.server.max_send_bytes,
            )
            return False
        started = time.monotonic()
        await self.context.write(response)
        self.metrics.send_time.observe(time.monotonic() - started)
        self.metrics.pushes.labels(kind).inc()
        self.metrics.config_size.labels(kind).observe(size)
        log_event(logging.INFO, type_url, "PUSH", **self._fields(), **summary, bytes=size)
        return True

    # bookkeeping -------------------------------------------------------------------------------------

    def _record(self, type_url: str, decision: Decision, fields: dict[str, object]) -> None:
        kind = short(type_url).lower()
        verdict = decision.verdict
        if verdict is Verdict.NACK:
            self.metrics.rejects.labels(kind).inc()
            log_event(logging.WARNING, type_url, "NACK", **self._fields(), **fields)
        elif verdict is Verdict.STALE:
            self.metrics.expired_nonce.labels(kind).inc()
            log_event(logging.DEBUG, type_url, "STALE", **self._fields(), **fields)
        elif verdict in (Verdict.INIT, Verdict.RECONNECT, Verdict.RESUBSCRIBE):
            log_event(logging.INFO, type_url, verdict.value, **self._fields(), **fields)
        else:
            log_event(logging.DEBUG, type_url, verdict.value, **self._fields(), **fields)
        if verdict in (Verdict.ACK, Verdict.NACK, Verdict.RESUBSCRIBE, Verdict.UNSUBSCRIBE):
            self._check_converged()

    def _recorded(
        self, type_url: str, decision: Decision, fields: dict[str, object], error: ErrorDetail | None
    ) -> ProxyResources | None:
        """Record a request's verdict (both flavours); the snapshot to answer it from, or None when
        it needs no answer (or asks for a type we do not serve, which is logged)."""
        if error is not None:
            fields.update(code=error.code, message=error.message)
        self._record(type_url, decision, fields)
        if type_url not in SUPPORTED:
            if decision.respond:
                log_event(logging.WARNING, type_url, "UNSUPPORTED", **self._fields())
            return None
        return self.snapshot if decision.respond else None

    def _started_push(self, push: PushRequest, sent: bool, mesh_version: str) -> None:
        """The push's sends are recorded in the watches: the stream stands at `mesh_version` now.
        Not earlier: while a write was in flight the watches still showed the previous ACKs, and
        a stream showing the new mesh version with every type SYNCED would tell syncz and
        proxy-status readers that the proxy has a config it was not even sent yet."""
        assert self.status is not None
        self.status.mesh_version = mesh_version
        if not sent:
            return
        self.metrics.convergence.observe(max(0.0, time.monotonic() - push.trigger_time))
        self._converging = push
        self._check_converged()

    def _check_converged(self) -> None:
        if self._converging is not None and self.status is not None and self.status.all_synced():
            self.metrics.ack_convergence.observe(max(0.0, time.monotonic() - self._converging.trigger_time))
            self._converging = None

    def _next_nonce(self) -> str:
        return str(next(_nonces))

    async def _handle(self, request: Any) -> None:
        raise NotImplementedError

    async def push(self, push: PushRequest) -> None:
        raise NotImplementedError


def _error_of(request: Any) -> ErrorDetail | None:
    if request.HasField("error_detail"):
        return ErrorDetail(request.error_detail.code, request.error_detail.message)
    return None


class SotwStream(_Stream):
    flavor = "sotw"

    def __init__(self, server: AdsServer, context: grpc.aio.ServicerContext) -> None:
        super().__init__(server, context)
        self.held_clusters: dict[str, Resource] = {}
        """The clusters of the last CDS response on this stream (to find added/changed/removed)."""

    async def _handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if self.status is None and not await self._open(request.node):
            return
        assert self.status is not None
        type_url = request.type_url
        req = SotwRequest(
            type_url,
            request.version_info,
            request.response_nonce,
            tuple(request.resource_names),
            _error_of(request),
        )
        previous = self.status.watches.get(type_url)
        assert previous is None or isinstance(previous, SotwWatch)
        watch, decision = sotw_on_request(previous, req, _WILDCARD, time.time())
        self.status.watches[type_url] = watch
        fields: dict[str, object] = {"version": req.version_info, "nonce": req.response_nonce}
        if decision.added or decision.removed or decision.verdict is Verdict.INIT:
            fields["names"] = len(watch.names)
        snapshot = self._recorded(type_url, decision, fields, req.error)
        if snapshot is not None:
            await self._respond(TypeUrl(type_url), snapshot, reason=decision.verdict.value.lower())

    async def _respond(self, type_url: TypeUrl, resources: ProxyResources, reason: str) -> None:
        """Answer a request for one type from the stream's snapshot (plus EDS if CDS changed clusters)."""
        assert self.status is not None
        watch = self.status.watches[type_url]
        assert isinstance(watch, SotwWatch)
        whole = resources.of(type_url)
        if watch.wildcard:
            selected, content = list(whole), whole.content_version()
        else:
            selected, content = _selected(whole, watch.names)
        changed_eds: list[str] = []
        if type_url is TypeUrl.CLUSTER:
            held = {n: r.version for n, r in self.held_clusters.items()}
            changed_eds = eds_service_names(_changed_clusters(selected, held))
        await self._send(Send(type_url, selected, reason=reason, content=content))
        eds = self.status.watches.get(TypeUrl.ENDPOINT)
        if changed_eds and isinstance(eds, SotwWatch):
            subset, content = _selected(resources.endpoints, eds.names | frozenset(changed_eds))
            await self._send(Send(TypeUrl.ENDPOINT, subset, force=True, reason="after-cds", content=content))

    async def _send(self, send: Send) -> bool:
        assert self.status is not None
        type_url = send.type_url
        watch = self.status.watches[type_url]
        assert isinstance(watch, SotwWatch)
        content = send.content or type_content(send.resources)
        version = sotw_version(content, watch, send.force)
        nonce = self._next_nonce()
        body = self.server.bodies.get(
            (type_url, content), lambda: self.server.sotw_body(type_url, send.resources)
        )
        response = (
            discovery_pb2.DiscoveryResponse(version_info=version, nonce=nonce).SerializeToString() + body
        )
        summary = {
            "version": version,
            "nonce": nonce,
            "resources": len(send.resources),
            "reason": send.reason,
        }
        if not await self._write(type_url, response, summary):
            return False
        self.status.watches[type_url] = sotw_on_sent(
            watch, nonce, version, (r.name for r in send.resources), time.time()
        )
        if type_url is TypeUrl.CLUSTER:
            self.held_clusters = {r.name: r for r in send.resources}
        return True

    async def push(self, push: PushRequest) -> None:
        refreshed = await self._refresh()
        if refreshed is None:
            return
        new, mesh_version = refreshed
        self.snapshot = new
        sent = False
        for send in plan_sotw_push(self.status.watches if self.status else {}, new, self.held_clusters):
            sent = await self._send(send) or sent
        self._started_push(push, sent, mesh_version)


class DeltaStream(_Stream):
    flavor = "delta"

    def __init__(self, server: AdsServer, context: grpc.aio.ServicerContext) -> None:
        super().__init__(server, context)
        self._planned: dict[str, _Planned] = {}

    async def _handle(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        if self.status is None and not await self._open(request.node):
            return
        assert self.status is not None
        type_url = request.type_url
        req = DeltaRequest(
            type_url,
            request.response_nonce,
            tuple(request.resource_names_subscribe),
            tuple(request.resource_names_unsubscribe),
            dict(request.initial_resource_versions),
            _error_of(request),
        )
        previous = self.status.watches.get(type_url)
        assert previous is None or isinstance(previous, DeltaWatch)
        watch, decision = delta_on_request(previous, req, _WILDCARD, time.time())
        self.status.watches[type_url] = watch
        fields: dict[str, object] = {"nonce": req.response_nonce}
        if req.subscribe:
            fields["subscribe"] = len(req.subscribe)
        if req.unsubscribe:
            fields["unsubscribe"] = len(req.unsubscribe)
        if req.initial_resource_versions:
            fields["initial"] = len(req.initial_resource_versions)
        snapshot = self._recorded(type_url, decision, fields, req.error)
        if snapshot is not None:
            await self._respond(TypeUrl(type_url), snapshot, decision)

    async def _respond(self, type_url: TypeUrl, resources: ProxyResources, decision: Decision) -> None:
        assert self.status is not None
        watch = self.status.watches[type_url]
        assert isinstance(watch, DeltaWatch)
        current = resources.of(type_url)
        changed, removed = delta_changes(watch, current.versions())
        if changed or removed or decision.always:
            send = Send(
                type_url,
                [current.by_name[n] for n in changed],
                removed,
                reason=decision.verdict.value.lower(),
            )
            await self._send(send)
        if type_url is TypeUrl.CLUSTER and changed:
            eds = self.status.watches.get(TypeUrl.ENDPOINT)
            changed_eds = eds_service_names(current.by_name[n] for n in changed)
            if isinstance(eds, DeltaWatch) and changed_eds:
                versions = resources.endpoints.versions()
                forced = [n for n in changed_eds if n in versions]
                resend = frozenset(n for n in forced if eds.known.get(n) == versions[n])
                eds = delta_force(eds, forced)
                self.status.watches[TypeUrl.ENDPOINT] = eds
                eds_changed, eds_removed = delta_changes(eds, versions)
                if eds_changed or eds_removed:
                    await self._send(
                        Send(
                            TypeUrl.ENDPOINT,
                            [resources.endpoints.by_name[n] for n in eds_changed],
                            eds_removed,
                            force=bool(resend),
                            resend=resend,
                            reason="after-cds",
                        )
                    )

    async def _send(self, send: Send) -> bool:
        assert self.status is not None
        type_url = send.type_url
        watch = self.status.watches[type_url]
        assert isinstance(watch, DeltaWatch)
        nonce = self._next_nonce()
        removed = frozenset(send.removed)
        held = {n: v for n, v in watch.known.items() if n not in removed} if removed else dict(watch.known)
        sent = {r.name: r.version for r in send.resources}
        held.update(sent)
        system_version = held_version(held)
        versioned = [(r, delta_wire_version(r.version, r.name in send.resend, watch)) for r in send.resources]
        key = (type_url, tuple((r.name, v) for r, v in versioned), tuple(send.removed))
        body = self.server.bodies.get(key, lambda: self.server.delta_body(type_url, versioned, send.removed))
        head = discovery_pb2.DeltaDiscoveryResponse(system_version_info=system_version, nonce=nonce)
        response = head.SerializeToString() + body
        summary = {
            "version": system_version,
            "nonce": nonce,
            "resources": len(send.resources),
            "removed": len(send.removed),
            "reason": send.reason,
        }
        if not await self._write(type_url, response, summary):
            return False
        self.status.watches[type_url] = delta_on_sent(
            watch,
            nonce,
            system_version,
            sent,
            send.removed,
            time.time(),
            resent=bool(send.resend),
            known=held,
        )
        return True

    async def push(self, push: PushRequest) -> None:
        refreshed = await self._refresh()
        if refreshed is None:
            return
        new, mesh_version = refreshed
        self.snapshot = new
        sent = False
        assert self.status is not None
        watches = self._maybe_changed(new)
        for send in plan_delta_push(watches, new):
            sent = await self._send(send) or sent
        for type_url in watches:
            watch = self.status.watches[type_url]
            assert isinstance(watch, DeltaWatch)
            self._planned[type_url] = _Planned(watch, new.of(TypeUrl(type_url)).versions())
        self._started_push(push, sent, mesh_version)

    def _maybe_changed(self, new: ProxyResources) -> dict[str, SotwWatch | DeltaWatch]:
        """The watches a push must plan for: not those whose client holdings and resources are the
        very objects the last plan left in sync (a route edit leaves this proxy's clusters,
        endpoints and listeners as they were; comparing their thousand versions again is waste)."""
        assert self.status is not None
        quiet = {t for t, w in self.status.watches.items() if self._still_synced(t, w, new)}
        if TypeUrl.CLUSTER.value not in quiet:
            quiet.discard(TypeUrl.ENDPOINT.value)  # changed clusters may force their endpoints again
        return {t: w for t, w in self.status.watches.items() if t not in quiet}

    def _still_synced(self, type_url: str, watch: SotwWatch | DeltaWatch, new: ProxyResources) -> bool:
        planned = self._planned.get(type_url)
        if planned is None or not isinstance(watch, DeltaWatch) or watch.pending or type_url not in SUPPORTED:
            return False
        last = planned.watch
        return (
            watch.known is last.known
            and watch.names is last.names
            and watch.wildcard == last.wildcard
            and new.of(TypeUrl(type_url)).versions() is planned.versions
        )


@dataclass(frozen=True, slots=True)
class _Planned:
    """What a delta stream's last push left in sync for one type: the watch and the versions."""

    watch: DeltaWatch
    versions: Mapping[str, str]


def held_version(held: Mapping[str, str]) -> str:
    """A delta response's `system_version_info`: the content hash of everything the client holds
    after it, by name (the same hash `type_content` gives those names and versions, sorted)."""
    return pairs_version(sorted(held.items()))


_SOTW_RESOURCES = wire.key(discovery_pb2.DiscoveryResponse.RESOURCES_FIELD_NUMBER)
_DELTA_RESOURCES = discovery_pb2.DeltaDiscoveryResponse.RESOURCES_FIELD_NUMBER
_RESOURCE = discovery_pb2.Resource


def _delta_resource(resource: Resource, version: str) -> bytes:
    """A delta `Resource` (version, the packed resource, name), encoded."""
    return (
        wire.field(_RESOURCE.VERSION_FIELD_NUMBER, version.encode())
        + wire.field(_RESOURCE.RESOURCE_FIELD_NUMBER, resource.any_bytes)
        + wire.field(_RESOURCE.NAME_FIELD_NUMBER, resource.name.encode())
    )


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """The servicer, and the registry of open streams that pushes go to."""

    def __init__(
        self,
        cache: XdsCache,
        metrics: Metrics,
        max_send_bytes: int = DEFAULT_MAX_SEND_BYTES,
        server_id: str = "pilotfish",
        push_timeout: float = 5.0,
    ) -> None:
        self.cache = cache
        self.metrics = metrics
        self.max_send_bytes = max_send_bytes
        self.server_id = server_id
        self.control_plane = base_pb2.ControlPlane(identifier=server_id)
        self.bodies = ResponseBodies()
        self.streams: dict[str, _Stream] = {}
        self.push_timeout = push_timeout
        self._latest: PushRequest | None = None
        self._wake = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None

    def sotw_body(self, type_url: TypeUrl, resources: Iterable[Resource]) -> bytes:
        """Everything of a SotW response but its version and nonce, encoded: the resources' `Any`
        encodings (each built once per resource) one after the other, then type URL and control
        plane (`xds.wire`: no response message is built, nothing is copied)."""
        tag = _SOTW_RESOURCES
        packed = b"".join(tag + wire.varint(len(r.any_bytes)) + r.any_bytes for r in resources)
        tail = discovery_pb2.DiscoveryResponse(type_url=type_url.value, control_plane=self.control_plane)
        return packed + bytes(tail.SerializeToString(deterministic=True))

    def delta_body(
        self, type_url: TypeUrl, resources: Iterable[tuple[Resource, str]], removed: Iterable[str]
    ) -> bytes:
        """Everything of a delta response but its system version and nonce, encoded (as `sotw_body`)."""
        packed = b"".join(
            wire.field(_DELTA_RESOURCES, _delta_resource(r, version)) for r, version in resources
        )
        tail = discovery_pb2.DeltaDiscoveryResponse(
            type_url=type_url.value, removed_resources=removed, control_plane=self.control_plane
        )
        return packed + bytes(tail.SerializeToString(deterministic=True))

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await SotwStream(self, context).run(request_iterator)

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await DeltaStream(self, context).run(request_iterator)

    def register(self, stream: _Stream) -> None:
        assert stream.status is not None
        self.streams[stream.status.conn_id] = stream
        self.cache.add_stream(stream.status)
        self.metrics.xds.set(len(self.streams))

    def unregister(self, stream: _Stream) -> None:
        if stream.status is None:
            return
        conn_id = stream.status.conn_id
        if self.streams.pop(conn_id, None) is not None:
            self.cache.remove_stream(conn_id)
            self.metrics.xds.set(len(self.streams))
            log_event(
                logging.INFO,
                None,
                "DISCONNECT",
                node=stream.status.proxy_id,
                conn=conn_id,
                seconds=round(time.time() - stream.status.connected_at, 3),
            )

    def push_all(self, push: PushRequest) -> int:
        """Move every stream to the current mesh; each pushes only what changed for it.

        Streams are pushed by a single pusher task, `PUSH_WINDOW` at a time (Istio: a bounded
        number of pushes in flight): generating a proxy's config is CPU work on this loop, and a
        bounded window lets ACKs be handled between batches instead of after every proxy has been
        generated. A newer push restarts the round.
        """
        self._latest = push
        self._wake.set()
        if self._pusher is None or self._pusher.done():
            loop = asyncio.get_running_loop()
            self._pusher = loop.create_task(self._push_rounds(), name="pilotfish-pusher")
        return len(self.streams)

    async def _push_rounds(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            push = self._latest
            if push is None:
                continue
            if await self._push_round(push) and self._latest is push:
                self._latest = None

    async def _push_round(self, push: PushRequest) -> bool:
        """Ask every stream to move to `push`, at most `PUSH_WINDOW` at a time; False when a newer
        push arrived first (the streams asked so far finish on their own; the rest get the newer).

        Each stream still sends as soon as its own config is built (its write starts before it
        waits), so a wide window does not make a proxy wait for the others' generation; it only
        keeps many writes' completions in flight at once.
        """
        in_flight: dict[asyncio.Future[None], _Stream] = {}
        for stream in list(self.streams.values()):
            if self._latest is not push:
                return False
            if len(in_flight) >= PUSH_WINDOW:
                await self._settle_one(in_flight)
            in_flight[stream.request_push(push)] = stream
        while in_flight:
            await self._settle_one(in_flight)
        return True

    async def _settle_one(self, in_flight: dict[asyncio.Future[None], _Stream]) -> None:
        """Wait until one in-flight push is done; one still running after `push_timeout` is
        reported and no longer waited for."""
        # asyncio.wait, not wait_for: wait_for in 3.11 can swallow a cancellation that races with
        # the future completing, which would leave close() waiting forever.
        done, _ = await asyncio.wait(
            set(in_flight), timeout=self.push_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for future in done:
            in_flight.pop(future, None)
        if done:
            return
        future = next(iter(in_flight))
        status = in_flight.pop(future).status
        log_event(
            logging.WARNING,
            None,
            "SLOW",
            node=status.proxy_id if status else "?",
            conn=status.conn_id if status else "?",
            reason=f"push not done after {self.push_timeout}s; moving on",
        )

    async def close(self) -> None:
        """Stop the pusher task (server shutdown)."""
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
