"""The Envoy v3 bootstrap that `pilotfish agent` writes: pilot-agent's job (istio-reference.md §10.2).

The bootstrap holds only what Envoy needs before it can talk to the control plane; everything else
(listeners, routes, clusters, endpoints, access logs) arrives over ADS. Its parts:

- `node`: the Istio node id `<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>`, `cluster` (the service cluster)
  and `metadata` (keys in `names.NodeMeta`) from which the discovery server finds the workload.
- `admin` on 127.0.0.1:15000, or on a unix socket (mode 0666) so that many Envoys can share one network
  namespace and a harness in another namespace can still read them.
- `dynamic_resources`: ADS over the static cluster `xds-grpc`, SotW (`GRPC`) or delta (`DELTA_GRPC`); LDS
  and CDS wait for the server forever (`initial_fetch_timeout: 0s`), so admin `/ready` says LIVE only once
  the first CDS and LDS were applied.
- `xds-grpc`: HTTP/2 to the discovery server over TCP (STATIC for an IP, STRICT_DNS for a name, TCP
  keepalive as in Istio) or over a unix socket; circuit breakers opened wide, as Istio does, so that
  many ADS streams never queue.
- `prometheus_stats`: a STATIC cluster pointing at Envoy's own admin (a TCP or pipe address). Two static
  listeners use it: `:15090` serves `/stats/prometheus` (as Istio), and `:15021` serves `/healthz/ready`,
  rewritten to admin `/ready`. Readiness therefore needs no agent HTTP server: it is 200 `LIVE` once the
  first xDS config is in, 503 before, and 503 `DRAINING` once the agent starts draining
  (`/healthcheck/fail`). Either listener is left out when its port is 0.
- `overload_manager`: the downstream connection limit modern Istio sets, which also silences Envoy's
  startup warning about an unlimited connection count.

Everything here is a pure function of `AgentOptions`.
"""

from __future__ import annotations

import json
from typing import Any

import pilotfish
from pilotfish.agent.options import AgentOptions, TcpAddress, UnixAddress, XdsFlavour
from pilotfish.model.names import (
    DEFAULT_CLUSTER_ID,
    PROMETHEUS_STATS_CLUSTER,
    XDS_CLUSTER,
    NodeMeta,
    ProxyType,
    listener_name,
)

Json = dict[str, Any]

SOCKET_MODE_ALL = 0o666
"""Admin socket mode: readable and writable by every uid, so root tools can reach a uid-1337 Envoy."""
XDS_CONNECT_TIMEOUT = "1s"
ADMIN_CONNECT_TIMEOUT = "0.250s"
TCP_KEEPALIVE_TIME_S = 300
CIRCUIT_BREAKER_LIMIT = 100000
MAX_DOWNSTREAM_CONNECTIONS = 2147483647
ADS_API_TYPE = {XdsFlavour.SOTW: "GRPC", XdsFlavour.DELTA: "DELTA_GRPC"}

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def build_bootstrap(opts: AgentOptions) -> Json:
    """The whole bootstrap, as a JSON-ready dict."""
    static: Json = {"clusters": [xds_cluster(opts), *admin_clusters(opts)]}
    listeners = static_listeners(opts)
    if listeners:
        static["listeners"] = listeners
    return {
        "node": node(opts),
        "admin": {"address": envoy_address(opts.admin, mode=SOCKET_MODE_ALL)},
        "dynamic_resources": dynamic_resources(opts),
        "static_resources": static,
        "overload_manager": overload_manager(),
    }


def bootstrap_json(opts: AgentOptions) -> str:
    """The bootstrap as the text written to Envoy's config file (stable key order, for goldens)."""
    return json.dumps(build_bootstrap(opts), indent=2) + "\n"


# --- node -----------------------------------------------------------------------------------------------


def service_cluster(opts: AgentOptions) -> str:
    """`node.cluster`: given, else `<app label>.<ns>` (Istio's default), else `<pod>.<ns>`."""
    if opts.service_cluster:
        return opts.service_cluster
    labels = opts.label_map
    app = labels.get("app") or labels.get("app.kubernetes.io/name") or opts.pod_name
    return f"{app}.{opts.namespace}"


def node_metadata(opts: AgentOptions) -> Json:
    """The metadata the discovery server reads to find and describe the workload."""
    meta: Json = {
        NodeMeta.ISTIO_VERSION: pilotfish.__version__,
        NodeMeta.CLUSTER_ID: DEFAULT_CLUSTER_ID,
        NodeMeta.NAMESPACE: opts.namespace,
        NodeMeta.CONFIG_NAMESPACE: opts.namespace,
        NodeMeta.POD_NAME: opts.pod_name,
        NodeMeta.LABELS: opts.label_map,
        NodeMeta.INSTANCE_IPS: opts.ip,
        NodeMeta.SERVICE_ACCOUNT: opts.service_account,
    }
    if opts.proxy_type is ProxyType.SIDECAR:
        meta[NodeMeta.INTERCEPTION_MODE] = opts.interception_mode.value
    if opts.pod_ports:
        ports = [{"containerPort": port, "protocol": "TCP"} for port in opts.pod_ports]
        meta[NodeMeta.POD_PORTS] = json.dumps(ports, separators=(",", ":"))
    meta.update(opts.extra_metadata)  # never a key above: `parse_metadata` refuses those
    return {str(key): value for key, value in meta.items()}


def node(opts: AgentOptions) -> Json:
    return {"id": str(opts.node_id), "cluster": service_cluster(opts), "metadata": node_metadata(opts)}


# --- addresses ---------------------------------------------------------------------------------------------


def envoy_address(address: TcpAddress | UnixAddress, *, mode: int | None = None) -> Json:
    """An Envoy `Address`: `socket_address`, or `pipe` (with a file mode when Envoy creates the socket)."""
    if isinstance(address, UnixAddress):
        pipe: Json = {"path": address.path}
        if mode is not None and not address.is_abstract:
            pipe["mode"] = mode
        return {"pipe": pipe}
    return {"socket_address": {"address": address.host, "port_value": address.port}}


def _load_assignment(cluster: str, address: TcpAddress | UnixAddress) -> Json:
    endpoint = {"endpoint": {"address": envoy_address(address)}}
    return {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [endpoint]}]}


# --- ADS ---------------------------------------------------------------------------------------------------


def dynamic_resources(opts: AgentOptions) -> Json:
    ads_source = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
    return {
        "ads_config": {
            "api_type": ADS_API_TYPE[opts.xds],
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            "set_node_on_first_message_only": True,
        },
        "cds_config": dict(ads_source),
        "lds_config": dict(ads_source),
    }


def _circuit_breakers() -> Json:
    limits = {
        "max_connections": CIRCUIT_BREAKER_LIMIT,
        "max_pending_requests": CIRCUIT_BREAKER_LIMIT,
        "max_requests": CIRCUIT_BREAKER_LIMIT,
    }
    return {"thresholds": [{"priority": "DEFAULT", **limits}, {"priority": "HIGH", **limits}]}


def xds_cluster(opts: AgentOptions) -> Json:
    """`xds-grpc`: one HTTP/2 connection to the discovery server that carries the ADS stream."""
    address = opts.discovery
    cluster: Json = {
        "name": XDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": XDS_CONNECT_TIMEOUT,
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "circuit_breakers": _circuit_breakers(),
        "load_assignment": _load_assignment(XDS_CLUSTER, address),
    }
    if isinstance(address, TcpAddress):
        # TCP keepalive finds a dead server behind a silent network; a unix socket has no such failure.
        cluster["upstream_connection_options"] = {"tcp_keepalive": {"keepalive_time": TCP_KEEPALIVE_TIME_S}}
        if not address.is_ip:
            cluster["type"] = "STRICT_DNS"
            cluster["dns_lookup_family"] = "V4_ONLY"
    return cluster


# --- stats and readiness -------------------------------------------------------------------------------


def admin_clusters(opts: AgentOptions) -> list[Json]:
    """`prometheus_stats` (Envoy's own admin as an upstream), when a listener needs it."""
    if not (opts.stats_port or opts.ready_port):
        return []
    return [
        {
            "name": PROMETHEUS_STATS_CLUSTER,
            "type": "STATIC",
            "connect_timeout": ADMIN_CONNECT_TIMEOUT,
            "lb_policy": "ROUND_ROBIN",
            "load_assignment": _load_assignment(PROMETHEUS_STATS_CLUSTER, opts.admin),
        }
    ]


def _http_listener(opts: AgentOptions, port: int, stat_prefix: str, route: Json) -> Json:
    """A static listener with one inline route to the admin cluster."""
    hcm = {
        "@type": _HCM,
        "codec_type": "AUTO",
        "stat_prefix": stat_prefix,
        "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "name": listener_name(opts.status_address, port),
        "address": envoy_address(TcpAddress(opts.status_address, port)),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def static_listeners(opts: AgentOptions) -> list[Json]:
    listeners = []
    if opts.stats_port:
        route = {"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": PROMETHEUS_STATS_CLUSTER}}
        listeners.append(_http_listener(opts, opts.stats_port, "stats", route))
    if opts.ready_port:
        route = {
            "match": {"path": "/healthz/ready"},
            "route": {"cluster": PROMETHEUS_STATS_CLUSTER, "prefix_rewrite": "/ready"},
        }
        listeners.append(_http_listener(opts, opts.ready_port, "agent", route))
    return listeners


def overload_manager() -> Json:
    monitor = "envoy.resource_monitors.global_downstream_max_connections"
    config = {
        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
        "DownstreamConnectionsConfig",
        "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
    }
    return {"resource_monitors": [{"name": monitor, "typed_config": config}]}
