"""Debug and metrics HTTP (aiohttp, loopback by default), shaped like istiod's port 15014.

/ready                      200 once a mesh is loaded, else 503
/metrics                    Prometheus text, Istio metric names
/debug/syncz                per stream: proxy, node, per type status (SYNCED/STALE/NOT SENT/NACK),
                            sent/acked versions and nonces, last NACK; also Istio 1.3's flat keys
                            (`cluster_sent`, `cluster_acked`, ...) so istioctl-style readers work
/debug/config_dump?proxyID= what the server would send that proxy, in Envoy's config_dump shape
/debug/registryz            the service registry of the current mesh
/debug/configz              the routing configuration of the current mesh
/debug/config_errors        diagnostics of the latest input (errors keep the last good mesh)
/debug/test/reject          (only with --enable-test-hooks) POST: next push carries a cluster Envoy
                            rejects, for `?proxyID=` or all proxies; DELETE: back to normal
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from pilotfish.server.cache import StreamStatus, XdsCache
from pilotfish.server.metrics import CONTENT_TYPE, Metrics, render
from pilotfish.server.protocol import DeltaWatch, Nack, SotwWatch
from pilotfish.xds.dump import config_dump_message
from pilotfish.xds.resources import PUSH_ORDER, ProxyResources, TypeUrl

# Istio 1.3 syncz keys per type (pilot/pkg/proxy/envoy/v2/debug.go SyncStatus).
_FLAT_KEYS = {
    TypeUrl.CLUSTER: "cluster",
    TypeUrl.LISTENER: "listener",
    TypeUrl.ROUTE: "route",
    TypeUrl.ENDPOINT: "endpoint",
}


def _iso(ts: float) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _nack_json(nack: Nack | None) -> dict[str, Any] | None:
    if nack is None:
        return None
    return {
        "nonce": nack.nonce,
        "version": nack.version,
        "code": nack.code,
        "message": nack.message,
        "time": _iso(nack.at),
    }


def watch_json(
    stream: StreamStatus, type_url: str, watch: SotwWatch | DeltaWatch, names: bool = False
) -> dict[str, Any]:
    """One type of one stream. Subscribed names only on request: for a sidecar of a large mesh they
    are thousands of strings, and syncz is polled."""
    entry: dict[str, Any] = {
        "type_url": type_url,
        "status": stream.status(type_url).value,
        "version_sent": watch.version_sent,
        "nonce_sent": watch.nonce_sent,
        "version_acked": watch.version_acked,
        "nonce_acked": watch.nonce_acked,
        "sent_at": _iso(watch.sent_at),
        "acked_at": _iso(watch.acked_at),
        "wildcard": watch.wildcard,
        "subscribed": len(watch.names),
        "last_nack": _nack_json(watch.last_nack),
    }
    if isinstance(watch, DeltaWatch):
        entry["resources"] = len(watch.known)
    else:
        entry["resources"] = len(watch.names_sent)
    if names:
        entry["names"] = sorted(watch.names)
    return entry


def stream_json(stream: StreamStatus, server_id: str, names: bool = False) -> dict[str, Any]:
    """One syncz entry: Istio 1.3's flat fields first, then the full per-type detail."""
    entry: dict[str, Any] = {
        "proxy": stream.proxy_id,
        "proxy_version": stream.envoy_version,
        "istio_version": stream.istio_version,
        "cluster_id": str(stream.metadata.get("CLUSTER_ID", "Kubernetes")),
        "istiod": server_id,
    }
    for type_url, key in _FLAT_KEYS.items():
        watch = stream.watches.get(type_url)
        entry[f"{key}_sent"] = watch.nonce_sent if watch else ""
        entry[f"{key}_acked"] = watch.nonce_acked if watch else ""
    entry.update(
        node_id=stream.node_id,
        conn_id=stream.conn_id,
        xds=stream.flavor,
        known=stream.proxy.known,
        connected_at=_iso(stream.connected_at),
        mesh_version=stream.mesh_version,
        last_error=stream.last_error,
        types={
            _SHORT.get(t, t): watch_json(stream, t, w, names)
            for t, w in sorted(stream.watches.items(), key=lambda kv: _ORDER.get(kv[0], len(_ORDER)))
        },
    )
    return entry


_ORDER = {t.value: i for i, t in enumerate(PUSH_ORDER)}
_SHORT = {t.value: t.short for t in TypeUrl}


def syncz(cache: XdsCache, server_id: str, proxy_id: str = "", names: bool = False) -> list[dict[str, Any]]:
    """Every stream (or the streams of `proxy_id`), sorted by proxy id like istioctl sorts them."""
    streams = sorted(cache.streams.values(), key=lambda s: (s.proxy_id, s.connected_at))
    if proxy_id:
        streams = [s for s in streams if s.proxy_id == proxy_id]
    return [stream_json(s, server_id, names or bool(proxy_id)) for s in streams]


# --- config_dump ------------------------------------------------------------------------------------


def config_dump_json(resources: ProxyResources, version: str) -> dict[str, Any]:
    """`xds.dump`'s ConfigDump with Envoy's own field names (snake_case), as Envoy's admin prints it,
    so `proxy-status <pod>` diffs it against the live dump field for field."""
    result: dict[str, Any] = json_format.MessageToDict(
        config_dump_message(resources, version), preserving_proto_field_name=True
    )
    return result


# --- registryz / configz: best-effort JSON of whatever the mesh exposes --------------------------------


def jsonable(value: Any, depth: int = 0) -> Any:
    """Turn model objects (dataclasses, pydantic models, enums, tuples, messages) into JSON data."""
    if depth > 12:
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v, depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json", by_alias=True, exclude_none=True), depth + 1)
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return [jsonable(v, depth + 1) for v in value]
    return str(value)


def _key(key: Any) -> str:
    """Mapping keys as text; tuple keys such as (hostname, port) become `hostname:port`."""
    return ":".join(str(part) for part in key) if isinstance(key, tuple) else str(key)


def mesh_view(mesh: Any, attributes: Iterable[str]) -> dict[str, Any]:
    view: dict[str, Any] = {"version": getattr(mesh, "version", "")}
    for attribute in attributes:
        if hasattr(mesh, attribute):
            view[attribute] = jsonable(getattr(mesh, attribute))
    return view


REGISTRY_ATTRIBUTES = ("services", "workloads", "endpoints", "service_entries")
CONFIG_ATTRIBUTES = (
    "gateways",
    "virtual_services",
    "destination_rules",
    "sidecars",
    "service_entries",
    "configs",
)


# --- the app ----------------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    """Compact JSON: `indent` would switch `json` to its pure-Python encoder, and syncz is polled."""
    return web.Response(text=json.dumps(data) + "\n", status=status, content_type="application/json")


def make_app(
    cache: XdsCache,
    metrics: Metrics,
    server_id: str,
    on_test_hook: Callable[[], None] | None = None,
) -> web.Application:
    """The debug app. `on_test_hook` (push to everyone) is given only when test hooks are enabled."""
    routes = web.RouteTableDef()

    @routes.get("/ready")
    async def ready(_: web.Request) -> web.Response:
        if cache.mesh is None:
            return web.Response(text="no mesh loaded yet\n", status=503)
        return web.Response(text="ready\n")

    @routes.get("/metrics")
    async def metrics_page(_: web.Request) -> web.Response:
        metrics.config_errors.set(sum(1 for d in cache.diagnostics if getattr(d, "level", "") == "error"))
        return web.Response(body=render(metrics.registry), headers={"Content-Type": CONTENT_TYPE})

    @routes.get("/debug/syncz")
    async def syncz_page(request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID", "")
        return _json(syncz(cache, server_id, proxy_id, names=request.query.get("names", "") in ("1", "true")))

    @routes.get("/debug/config_dump")
    async def config_dump_page(request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID", "")
        streams = cache.streams_of(proxy_id)
        if not proxy_id or not streams:
            known = sorted({s.proxy_id for s in cache.streams.values()})
            return _json({"error": f"proxy {proxy_id!r} is not connected", "connected": known}, status=404)
        if cache.mesh is None:
            return _json({"error": "no mesh loaded yet"}, status=503)
        stream = max(streams, key=lambda s: s.connected_at)
        resources = cache.resources_for(stream.proxy)
        return _json(config_dump_json(resources, cache.mesh.version))

    @routes.get("/debug/registryz")
    async def registryz(_: web.Request) -> web.Response:
        return _json(mesh_view(cache.mesh, REGISTRY_ATTRIBUTES) if cache.mesh else {})

    @routes.get("/debug/configz")
    async def configz(_: web.Request) -> web.Response:
        return _json(mesh_view(cache.mesh, CONFIG_ATTRIBUTES) if cache.mesh else {})

    @routes.get("/debug/config_errors")
    async def config_errors(_: web.Request) -> web.Response:
        return _json(
            {
                "mesh_version": cache.mesh.version if cache.mesh else "",
                "errors": [str(d) for d in cache.diagnostics if getattr(d, "level", "error") == "error"],
                "warnings": [str(d) for d in cache.diagnostics if getattr(d, "level", "error") != "error"],
            }
        )

    if on_test_hook is not None:
        push = on_test_hook

        @routes.post("/debug/test/reject")
        async def reject_on(request: web.Request) -> web.Response:
            cache.reject_next.add(request.query.get("proxyID", "*"))
            cache.invalidate()
            push()
            return _json({"reject": sorted(cache.reject_next)})

        @routes.delete("/debug/test/reject")
        async def reject_off(_: web.Request) -> web.Response:
            cache.reject_next.clear()
            cache.invalidate()
            push()
            return _json({"reject": []})

    app = web.Application()
    app.add_routes(routes)
    return app
