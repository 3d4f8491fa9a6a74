from __future__ import annotations

import json

from pilotfish.agent.bootstrap import build_bootstrap, node_metadata, service_cluster
from pilotfish.agent.options import AgentOptions, InterceptionMode, TcpAddress, UnixAddress, XdsFlavour
from pilotfish.model.names import PROMETHEUS_STATS_CLUSTER, XDS_CLUSTER, NodeMeta, ProxyType


def _options(**overrides: object) -> AgentOptions:
    values: dict[str, object] = {
        "proxy_type": ProxyType.SIDECAR,
        "pod_name": "reviews-v1-abc",
        "namespace": "default",
        "ip": "10.44.0.11",
        "discovery": TcpAddress("127.0.0.1", 15010),
    }
    values.update(overrides)
    return AgentOptions(**values)  # type: ignore[arg-type]


def _cluster(bootstrap: dict[str, object], name: str) -> dict[str, object]:
    clusters = bootstrap["static_resources"]["clusters"]  # type: ignore[index]
    return next(cluster for cluster in clusters if cluster["name"] == name)


def test_node_identifies_the_workload() -> None:
    opts = _options(labels=(("app", "reviews"), ("version", "v1")), pod_ports=(9080, 9443))
    node = build_bootstrap(opts)["node"]
    assert node["id"] == "sidecar~10.44.0.11~reviews-v1-abc.default~default.svc.cluster.local"
    assert node["cluster"] == "reviews.default"
    meta = node["metadata"]
    assert meta[NodeMeta.LABELS] == {"app": "reviews", "version": "v1"}
    assert meta[NodeMeta.NAMESPACE] == meta[NodeMeta.CONFIG_NAMESPACE] == "default"
    assert meta[NodeMeta.POD_NAME] == "reviews-v1-abc"
    assert meta[NodeMeta.INSTANCE_IPS] == "10.44.0.11"
    assert meta[NodeMeta.INTERCEPTION_MODE] == "REDIRECT"
    assert json.loads(meta[NodeMeta.POD_PORTS]) == [
        {"containerPort": 9080, "protocol": "TCP"},
        {"containerPort": 9443, "protocol": "TCP"},
    ]


def test_router_metadata_has_no_interception_mode() -> None:
    meta = node_metadata(_options(proxy_type=ProxyType.ROUTER, interception_mode=InterceptionMode.TPROXY))
    assert NodeMeta.INTERCEPTION_MODE not in meta
    assert NodeMeta.POD_PORTS not in meta


def test_service_cluster_like_istio() -> None:
    assert service_cluster(_options(labels=(("app", "reviews"),))) == "reviews.default"
    assert service_cluster(_options(labels=(("app.kubernetes.io/name", "ratings"),))) == "ratings.default"
    assert service_cluster(_options()) == "reviews-v1-abc.default"
    assert service_cluster(_options(service_cluster="custom")) == "custom"


def test_ads_flavour_selects_the_api_type() -> None:
    for flavour, api_type in ((XdsFlavour.SOTW, "GRPC"), (XdsFlavour.DELTA, "DELTA_GRPC")):
        ads = build_bootstrap(_options(xds=flavour))["dynamic_resources"]["ads_config"]
        assert ads["api_type"] == api_type
        assert ads["grpc_services"] == [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]


def test_xds_cluster_over_tcp_ip_dns_and_unix() -> None:
    tcp = _cluster(build_bootstrap(_options()), XDS_CLUSTER)
    assert tcp["type"] == "STATIC"
    assert tcp["upstream_connection_options"] == {"tcp_keepalive": {"keepalive_time": 300}}

    dns = _cluster(
        build_bootstrap(_options(discovery=TcpAddress("istiod.istio-system.svc", 15012))), XDS_CLUSTER
    )
    assert (dns["type"], dns["dns_lookup_family"]) == ("STRICT_DNS", "V4_ONLY")

    unix = _cluster(build_bootstrap(_options(discovery=UnixAddress("/run/pf/xds.sock"))), XDS_CLUSTER)
    assert unix["type"] == "STATIC"
    assert "upstream_connection_options" not in unix, "TCP keepalive options fail on a unix socket"
    endpoint = unix["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]  # type: ignore[index]
    assert endpoint == {"address": {"pipe": {"path": "/run/pf/xds.sock"}}}


def test_admin_socket_mode_and_abstract_socket() -> None:
    admin = build_bootstrap(_options(admin=UnixAddress("/run/pf/a.sock")))["admin"]
    assert admin == {"address": {"pipe": {"path": "/run/pf/a.sock", "mode": 0o666}}}
    abstract = build_bootstrap(_options(admin=UnixAddress("@pf-admin")))["admin"]
    assert abstract == {"address": {"pipe": {"path": "@pf-admin"}}}, "abstract sockets take no mode"


def test_status_listeners_follow_their_ports() -> None:
    both = build_bootstrap(_options(stats_port=19090, ready_port=19021, status_address="127.0.0.1"))
    names = [listener["name"] for listener in both["static_resources"]["listeners"]]
    assert names == ["127.0.0.1_19090", "127.0.0.1_19021"]

    ready_only = build_bootstrap(_options(stats_port=0))
    [listener] = ready_only["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    [route] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert route == {
        "match": {"path": "/healthz/ready"},
        "route": {"cluster": PROMETHEUS_STATS_CLUSTER, "prefix_rewrite": "/ready"},
    }

    neither = build_bootstrap(_options(stats_port=0, ready_port=0))
    assert "listeners" not in neither["static_resources"]
    assert [c["name"] for c in neither["static_resources"]["clusters"]] == [XDS_CLUSTER]


def test_extra_metadata_is_added() -> None:
    meta = node_metadata(_options(extra_metadata=(("PILOTFISH_TEST_HOOK", "nack-lds"),)))
    assert meta["PILOTFISH_TEST_HOOK"] == "nack-lds"
    assert meta[NodeMeta.NAMESPACE] == "default"
