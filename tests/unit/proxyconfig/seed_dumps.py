"""Envoy admin documents in the shape the seed's Istio 1.3.6 proxies would serve (v3 filter names).

Two proxies of the seed's Bookinfo: the ingress gateway `istio-ingressgateway-768778694-sz9kw`
(listener 0.0.0.0_80 -> RDS `http.80` -> `outbound|9080||productpage...`) and the sidecar of
`productpage-v1-8554d58bff-d7j8d` (pod IP 10.0.15.34: per-port inbound listener 10.0.15.34_9080,
outbound 0.0.0.0_9080 whose first chain is the pod-IP blackhole, virtualOutbound, virtualInbound).
Listener order follows 1.3's LDS order (inbound, outbound TCP, outbound HTTP, virtualOutbound,
virtualInbound); static resources come from the 1.3 bootstrap (prometheus listener on 15090,
prometheus_stats and xds-grpc clusters). Everything is built as the snake_case JSON Envoy's admin writes.
"""

from __future__ import annotations

from typing import Any

POD_IP = "10.0.15.34"
GATEWAY_IP = "10.0.15.20"
SERVICES = {  # service -> (cluster IP, pod IPs)
    "details": ("169.169.61.135", ["10.0.15.33"]),
    "productpage": ("169.169.167.117", [POD_IP]),
    "ratings": ("169.169.30.236", ["10.0.15.29"]),
    "reviews": ("169.169.236.122", ["10.0.15.30", "10.0.15.31", "10.0.15.32"]),
}
PILOT_IP = "169.169.200.10"
TYPE = "type.googleapis.com/"
HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
RETRY_POLICY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted,"
    "retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}
ADS = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def fqdn(service: str) -> str:
    return f"{service}.default.svc.cluster.local"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _tcp_proxy(cluster: str) -> dict[str, Any]:
    return {
        "name": TCP_PROXY,
        "typed_config": {
            "@type": TYPE + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": cluster,
            "cluster": cluster,
        },
    }


def _hcm(
    stat_prefix: str, *, rds: str | None = None, route_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
    }
    if rds is not None:
        config["rds"] = {"config_source": ADS, "route_config_name": rds}
    if route_config is not None:
        config["route_config"] = route_config
    config["http_filters"] = [
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
        }
    ]
    return {"name": HCM, "typed_config": config}


def _listener(
    name: str, address: str, port: int, chains: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    listener: dict[str, Any] = {
        "@type": TYPE + "envoy.config.listener.v3.Listener",
        "name": name,
        "address": _socket(address, port),
        "filter_chains": chains,
    }
    listener.update(extra)
    return listener


def _dynamic_listener(listener: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": listener["name"],
        "active_state": {
            "version_info": "2020-01-05T08:00:00Z/12",
            "listener": listener,
            "last_updated": "2020-01-05T08:00:01.000Z",
        },
    }


def _prometheus_listener() -> dict[str, Any]:
    route_config = {
        "virtual_hosts": [
            {
                "name": "backend",
                "domains": ["*"],
                "routes": [
                    {"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": "prometheus_stats"}}
                ],
            }
        ]
    }
    return {
        "listener": _listener(
            "", "0.0.0.0", 15090, [{"filters": [_hcm("stats", route_config=route_config)]}]
        ),
        "last_updated": "2020-01-05T07:59:59.000Z",
    }


def _inbound_route(service: str, port: int) -> dict[str, Any]:
    cluster = f"inbound|{port}|http|{fqdn(service)}"
    return {
        "name": cluster,
        "virtual_hosts": [
            {
                "name": f"inbound|http|{port}",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "route": {"cluster": cluster, "timeout": "0s", "max_grpc_timeout": "0s"},
                        "decorator": {"operation": f"{fqdn(service)}:{port}/*"},
                        "name": "default",
                    }
                ],
            }
        ],
        "validate_clusters": False,
    }


def _outbound_vhost(service: str, port: int) -> dict[str, Any]:
    ip = SERVICES[service][0]
    host = fqdn(service)
    domains = [
        host,
        f"{host}:{port}",
        service,
        f"{service}:{port}",
        f"{service}.default.svc.cluster",
        f"{service}.default.svc.cluster:{port}",
        f"{service}.default.svc",
        f"{service}.default.svc:{port}",
        f"{service}.default",
        f"{service}.default:{port}",
        ip,
        f"{ip}:{port}",
    ]
    return {
        "name": f"{host}:{port}",
        "domains": domains,
        "routes": [
            {
                "match": {"prefix": "/"},
                "route": {
                    "cluster": f"outbound|{port}||{host}",
                    "timeout": "0s",
                    "retry_policy": RETRY_POLICY,
                    "max_grpc_timeout": "0s",
                },
                "decorator": {"operation": f"{host}:{port}/*"},
                "name": "default",
            }
        ],
    }


def _allow_any() -> dict[str, Any]:
    return {
        "name": "allow_any",
        "domains": ["*"],
        "routes": [
            {
                "match": {"prefix": "/"},
                "route": {"cluster": "PassthroughCluster", "timeout": "0s", "max_grpc_timeout": "0s"},
                "name": "allow_any",
            }
        ],
    }


def _eds_cluster(name: str) -> dict[str, Any]:
    return {
        "@type": TYPE + "envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {
            "eds_config": {"ads": {}, "initial_fetch_timeout": "0s"},
            "service_name": name,
        },
        "connect_timeout": "10s",
        "circuit_breakers": {"thresholds": [{"max_retries": 1024}]},
    }


def _static_cluster(name: str, address: str, port: int, *, kind: str = "STATIC") -> dict[str, Any]:
    return {
        "@type": TYPE + "envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": kind,
        "connect_timeout": "10s" if kind == "STATIC" else "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(address, port)}}]}],
        },
        "circuit_breakers": {"thresholds": [{}]},
    }


def _special_cluster(name: str) -> dict[str, Any]:
    cluster: dict[str, Any] = {"@type": TYPE + "envoy.config.cluster.v3.Cluster", "name": name}
    if name == "PassthroughCluster":
        cluster.update({"type": "ORIGINAL_DST", "connect_timeout": "10s", "lb_policy": "CLUSTER_PROVIDED"})
    else:
        cluster.update({"type": "STATIC", "connect_timeout": "10s"})
    return cluster


def _clusters_dump(dynamic: list[dict[str, Any]]) -> dict[str, Any]:
    static = [
        _static_cluster("prometheus_stats", "127.0.0.1", 15000),
        _static_cluster("xds-grpc", "istio-pilot.istio-system", 15010, kind="STRICT_DNS"),
    ]
    return {
        "@type": TYPE + "envoy.admin.v3.ClustersConfigDump",
        "version_info": "2020-01-05T08:00:00Z/12",
        "static_clusters": [{"cluster": c, "last_updated": "2020-01-05T07:59:59.000Z"} for c in static],
        "dynamic_active_clusters": [
            {
                "version_info": "2020-01-05T08:00:00Z/12",
                "cluster": c,
                "last_updated": "2020-01-05T08:00:01.000Z",
            }
            for c in dynamic
        ],
    }


def _bootstrap(node_id: str, service_cluster: str) -> dict[str, Any]:
    return {
        "@type": TYPE + "envoy.admin.v3.BootstrapConfigDump",
        "bootstrap": {
            "node": {
                "id": node_id,
                "cluster": service_cluster,
                "metadata": {
                    "ISTIO_VERSION": "1.3.6",
                    "ISTIO_PROXY_SHA": "istio-proxy:8a7f4b3a9a4b0b9c2e8f6c1d",
                },
                "user_agent_build_version": {
                    "version": {"major_number": 1, "minor_number": 12},
                    "metadata": {
                        "revision.status": "Clean",
                        "build.type": "RELEASE",
                        "ssl.version": "BoringSSL",
                    },
                },
            },
            "admin": {"address": _socket("127.0.0.1", 15000)},
        },
        "last_updated": "2020-01-05T07:59:59.000Z",
    }


def _endpoints_dump(assignments: list[tuple[str, list[str]]]) -> dict[str, Any]:
    dynamic = [
        {
            "endpoint_config": {
                "@type": TYPE + "envoy.config.endpoint.v3.ClusterLoadAssignment",
                "cluster_name": name,
                "endpoints": [
                    {
                        "locality": {},
                        "lb_endpoints": [
                            {"endpoint": {"address": _socket(ip, 9080)}, "health_status": "HEALTHY"}
                            for ip in ips
                        ],
                    }
                ],
            }
        }
        for name, ips in assignments
    ]
    return {"@type": TYPE + "envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": dynamic}


def _host(address: str, port: int, health: str = "HEALTHY") -> dict[str, Any]:
    return {
        "address": _socket(address, port),
        "stats": [{"name": "cx_active", "type": "GAUGE"}, {"name": "rq_total"}],
        "health_status": {"eds_health_status": health},
        "weight": 1,
        "locality": {},
    }


def _cluster_status(name: str, hosts: list[dict[str, Any]], added_via_api: bool = True) -> dict[str, Any]:
    if added_via_api:
        return {"name": name, "added_via_api": True, "host_statuses": hosts}
    return {"name": name, "host_statuses": hosts}


# ---------------------------------------------------------------- productpage sidecar


def productpage_config_dump() -> dict[str, Any]:
    inbound_chain_route = _inbound_route("productpage", 9080)
    listeners = [
        _listener(
            f"{POD_IP}_9080",
            POD_IP,
            9080,
            [{"filters": [_hcm(f"{POD_IP}_9080", route_config=inbound_chain_route)]}],
            deprecated_v1={"bind_to_port": False},
            traffic_direction="INBOUND",
        ),
        _listener(
            "169.169.0.1_443",
            "169.169.0.1",
            443,
            [{"filters": [_tcp_proxy("outbound|443||kubernetes.default.svc.cluster.local")]}],
            traffic_direction="OUTBOUND",
        ),
        _listener(
            "0.0.0.0_9080",
            "0.0.0.0",
            9080,
            [
                {
                    "filter_chain_match": {"prefix_ranges": [{"address_prefix": POD_IP, "prefix_len": 32}]},
                    "filters": [_tcp_proxy("BlackHoleCluster")],
                },
                {"filters": [_hcm("0.0.0.0_9080", rds="9080")]},
            ],
            traffic_direction="OUTBOUND",
        ),
        _listener(
            "0.0.0.0_80",
            "0.0.0.0",
            80,
            [
                {
                    "filter_chain_match": {"prefix_ranges": [{"address_prefix": POD_IP, "prefix_len": 32}]},
                    "filters": [_tcp_proxy("BlackHoleCluster")],
                },
                {"filters": [_hcm("0.0.0.0_80", rds="80")]},
            ],
            traffic_direction="OUTBOUND",
        ),
        _listener(
            "virtualOutbound",
            "0.0.0.0",
            15001,
            [
                {
                    "filter_chain_match": {"prefix_ranges": [{"address_prefix": POD_IP, "prefix_len": 32}]},
                    "filters": [_tcp_proxy("BlackHoleCluster")],
                },
                {"filters": [_tcp_proxy("PassthroughCluster")]},
            ],
            use_original_dst=True,
        ),
        _listener(
            "virtualInbound",
            "0.0.0.0",
            15006,
            [
                {
                    "filter_chain_match": {"prefix_ranges": [{"address_prefix": "0.0.0.0", "prefix_len": 0}]},
                    "filters": [_tcp_proxy("InboundPassthroughClusterIpv4")],
                    "metadata": {
                        "filter_metadata": {"pilot_meta": {"original_listener_name": "virtualInbound"}}
                    },
                },
                {
                    "filter_chain_match": {
                        "prefix_ranges": [{"address_prefix": POD_IP, "prefix_len": 32}],
                        "destination_port": 9080,
                    },
                    "filters": [_hcm(f"{POD_IP}_9080", route_config=inbound_chain_route)],
                    "metadata": {
                        "filter_metadata": {"pilot_meta": {"original_listener_name": f"{POD_IP}_9080"}}
                    },
                },
            ],
            listener_filters=[{"name": "envoy.filters.listener.original_dst"}],
            listener_filters_timeout="1s",
            continue_on_listener_filters_timeout=True,
        ),
    ]
    routes = [
        {"name": "15010", "virtual_hosts": [_pilot_vhost(), _allow_any()], "validate_clusters": False},
        {
            "name": "9080",
            "virtual_hosts": [_outbound_vhost(s, 9080) for s in sorted(SERVICES)] + [_allow_any()],
            "validate_clusters": False,
        },
        {"name": "80", "virtual_hosts": [_gateway_vhost(), _allow_any()], "validate_clusters": False},
    ]
    clusters = [
        *(_eds_cluster(f"outbound|9080||{fqdn(s)}") for s in sorted(SERVICES)),
        _eds_cluster("outbound|443||kubernetes.default.svc.cluster.local"),
        _eds_cluster("outbound|15010||istio-pilot.istio-system.svc.cluster.local"),
        _eds_cluster("outbound|80||istio-ingressgateway.istio-system.svc.cluster.local"),
        _static_cluster(f"inbound|9080|http|{fqdn('productpage')}", "127.0.0.1", 9080),
        _special_cluster("BlackHoleCluster"),
        _special_cluster("PassthroughCluster"),
    ]
    return {
        "configs": [
            _bootstrap(
                f"sidecar~{POD_IP}~productpage-v1-8554d58bff-d7j8d.default~default.svc.cluster.local",
                "productpage.default",
            ),
            _clusters_dump(clusters),
            {
                "@type": TYPE + "envoy.admin.v3.ListenersConfigDump",
                "version_info": "2020-01-05T08:00:00Z/12",
                "static_listeners": [_prometheus_listener()],
                "dynamic_listeners": [_dynamic_listener(listener) for listener in listeners],
            },
            {"@type": TYPE + "envoy.admin.v3.ScopedRoutesConfigDump"},
            {
                "@type": TYPE + "envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [
                    {
                        "version_info": "2020-01-05T08:00:00Z/12",
                        "route_config": {"@type": TYPE + "envoy.config.route.v3.RouteConfiguration", **r},
                    }
                    for r in routes
                ],
            },
            {"@type": TYPE + "envoy.admin.v3.SecretsConfigDump"},
            _endpoints_dump([(f"outbound|9080||{fqdn(s)}", SERVICES[s][1]) for s in sorted(SERVICES)]),
        ]
    }


def _pilot_vhost() -> dict[str, Any]:
    host = "istio-pilot.istio-system.svc.cluster.local"
    return {
        "name": f"{host}:15010",
        "domains": [host, f"{host}:15010", "istio-pilot.istio-system", "istio-pilot.istio-system:15010"],
        "routes": [
            {
                "match": {"prefix": "/"},
                "route": {"cluster": f"outbound|15010||{host}", "timeout": "0s"},
                "name": "default",
            }
        ],
    }


def _gateway_vhost() -> dict[str, Any]:
    host = "istio-ingressgateway.istio-system.svc.cluster.local"
    return {
        "name": f"{host}:80",
        "domains": [
            host,
            f"{host}:80",
            "istio-ingressgateway.istio-system",
            "istio-ingressgateway.istio-system:80",
        ],
        "routes": [
            {
                "match": {"prefix": "/"},
                "route": {"cluster": f"outbound|80||{host}", "timeout": "0s"},
                "name": "default",
            }
        ],
    }


def productpage_clusters() -> dict[str, Any]:
    statuses = [
        _cluster_status(f"outbound|9080||{fqdn(s)}", [_host(ip, 9080) for ip in SERVICES[s][1]])
        for s in sorted(SERVICES)
    ]
    statuses += [
        _cluster_status("outbound|443||kubernetes.default.svc.cluster.local", [_host("192.168.0.10", 6443)]),
        _cluster_status(
            "outbound|15010||istio-pilot.istio-system.svc.cluster.local", [_host("10.0.15.5", 15010)]
        ),
        _cluster_status(
            "outbound|80||istio-ingressgateway.istio-system.svc.cluster.local", [_host(GATEWAY_IP, 80)]
        ),
        _cluster_status(f"inbound|9080|http|{fqdn('productpage')}", [_host("127.0.0.1", 9080)]),
        _cluster_status("BlackHoleCluster", []),
        _cluster_status("PassthroughCluster", []),
        _cluster_status("prometheus_stats", [_host("127.0.0.1", 15000)], added_via_api=False),
        _cluster_status("xds-grpc", [_host(PILOT_IP, 15010)], added_via_api=False),
    ]
    return {"cluster_statuses": statuses}


# ---------------------------------------------------------------- ingress gateway


VIRTUAL_SERVICE_PATH = "/apis/networking.istio.io/v1alpha3/namespaces/default/virtual-service/bookinfo"
GATEWAY_ROUTES = [
    ("path", "/productpage"),
    ("path", "/login"),
    ("path", "/logout"),
    ("prefix", "/static"),
    ("prefix", "/api/v1/products"),
]


def gateway_config_dump() -> dict[str, Any]:
    productpage = f"outbound|9080||{fqdn('productpage')}"
    listener = _listener(
        "0.0.0.0_80",
        "0.0.0.0",
        80,
        [{"filters": [_hcm("0.0.0.0_80", rds="http.80")]}],
        traffic_direction="OUTBOUND",
    )
    route = {
        "@type": TYPE + "envoy.config.route.v3.RouteConfiguration",
        "name": "http.80",
        "virtual_hosts": [
            {
                "name": "*:80",
                "domains": ["*", "*:80"],
                "routes": [
                    {
                        "match": {kind: value, "case_sensitive": True},
                        "route": {
                            "cluster": productpage,
                            "timeout": "0s",
                            "retry_policy": RETRY_POLICY,
                            "max_grpc_timeout": "0s",
                        },
                        "metadata": {"filter_metadata": {"istio": {"config": VIRTUAL_SERVICE_PATH}}},
                        "decorator": {"operation": f"{fqdn('productpage')}:9080/*"},
                    }
                    for kind, value in GATEWAY_ROUTES
                ],
            }
        ],
        "validate_clusters": False,
    }
    clusters = []
    for service in sorted(SERVICES):
        clusters.append(_eds_cluster(f"outbound_.9080_._.{fqdn(service)}"))
        clusters.append(_eds_cluster(f"outbound|9080||{fqdn(service)}"))
    clusters.append(_special_cluster("BlackHoleCluster"))
    return {
        "configs": [
            _bootstrap(
                f"router~{GATEWAY_IP}~istio-ingressgateway-768778694-sz9kw.istio-system~istio-system.svc.cluster.local",
                "istio-ingressgateway",
            ),
            _clusters_dump(clusters),
            {
                "@type": TYPE + "envoy.admin.v3.ListenersConfigDump",
                "version_info": "2020-01-05T08:00:00Z/7",
                "static_listeners": [_prometheus_listener()],
                "dynamic_listeners": [_dynamic_listener(listener)],
            },
            {
                "@type": TYPE + "envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [{"version_info": "2020-01-05T08:00:00Z/7", "route_config": route}],
            },
        ]
    }


def gateway_clusters() -> dict[str, Any]:
    statuses = []
    for service in sorted(SERVICES):
        hosts = [_host(ip, 9080) for ip in SERVICES[service][1]]
        statuses.append(_cluster_status(f"outbound_.9080_._.{fqdn(service)}", hosts))
        statuses.append(_cluster_status(f"outbound|9080||{fqdn(service)}", hosts))
    statuses.append(_cluster_status("BlackHoleCluster", []))
    statuses.append(_cluster_status("prometheus_stats", [_host("127.0.0.1", 15000)], added_via_api=False))
    statuses.append(_cluster_status("xds-grpc", [_host(PILOT_IP, 15010)], added_via_api=False))
    return {"cluster_statuses": statuses}
