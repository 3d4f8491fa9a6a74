"""The seed's istioctl 1.3 outputs, reproduced from dumps in the shape the seed's proxies would serve.

The seed (Istio 1.3.6 Bookinfo) shows whitespace-collapsed tables; istioctl 1.3 printed them through Go's
tabwriter with padding 5, so the literal expectations below are the seed's rows laid out that way.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pilotfish.inspect import views
from pilotfish.inspect.clusters import ClusterFilter
from pilotfish.inspect.configdump import ClustersStatus, ConfigDump, ConfigDumpError
from pilotfish.inspect.endpoints import EndpointFilter
from pilotfish.inspect.listeners import ListenerFilter
from pilotfish.inspect.profile import PROFILES, Profile
from pilotfish.inspect.routes import RouteFilter
from tests.unit.proxyconfig import check_golden, seed_dumps

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "proxyconfig"
PRODUCTPAGE = seed_dumps.fqdn("productpage")
REVIEWS = seed_dumps.fqdn("reviews")


@pytest.fixture
def sidecar() -> ConfigDump:
    return ConfigDump.from_json(seed_dumps.productpage_config_dump())


@pytest.fixture
def gateway() -> ConfigDump:
    return ConfigDump.from_json(seed_dumps.gateway_config_dump())


@pytest.fixture
def sidecar_hosts() -> ClustersStatus:
    return ClustersStatus.from_json(seed_dumps.productpage_clusters())


@pytest.fixture
def gateway_hosts() -> ClustersStatus:
    return ClustersStatus.from_json(seed_dumps.gateway_clusters())


# ---------------------------------------------------------------- the seed's tables, byte for byte


def test_gateway_listeners(gateway: ConfigDump) -> None:
    assert views.listener(gateway, ListenerFilter(), "1.3", "short") == (
        "ADDRESS     PORT      TYPE\n0.0.0.0     80        HTTP\n0.0.0.0     15090     HTTP\n"
    )


def test_gateway_route_http80(gateway: ConfigDump) -> None:
    assert views.route(gateway, RouteFilter(name="http.80"), "1.3", "short") == (
        "NOTE: This output only contains routes loaded via RDS.\nNAME        VIRTUAL HOSTS\nhttp.80     1\n"
    )


def test_sidecar_listeners_on_9080(sidecar: ConfigDump) -> None:
    # The seed: "10.0.15.34 9080 HTTP" (inbound) and "0.0.0.0 9080 TCP" (outbound: its first chain is the
    # pod-IP blackhole TCP proxy, and istioctl 1.3 reports the first filter it meets).
    assert views.listener(sidecar, ListenerFilter(port=9080), "1.3", "short") == (
        "ADDRESS        PORT     TYPE\n10.0.15.34     9080     HTTP\n0.0.0.0        9080     TCP\n"
    )


def test_sidecar_productpage_clusters(sidecar: ConfigDump) -> None:
    assert views.cluster(sidecar, ClusterFilter(fqdn=PRODUCTPAGE), "1.3", "short") == (
        "SERVICE FQDN                              PORT     SUBSET     DIRECTION     TYPE\n"
        "productpage.default.svc.cluster.local     9080     -          outbound      EDS\n"
        "productpage.default.svc.cluster.local     9080     http       inbound       STATIC\n"
    )


def test_sidecar_reviews_endpoints(sidecar_hosts: ClustersStatus) -> None:
    table = views.endpoint(sidecar_hosts, EndpointFilter(), "short")
    assert table.splitlines()[0] == "ENDPOINT                 STATUS      OUTLIER CHECK     CLUSTER"
    grep = [line.split() for line in table.splitlines() if REVIEWS in line]  # `| grep reviews...`
    assert grep == [[f"10.0.15.{n}:9080", "HEALTHY", "OK", f"outbound|9080||{REVIEWS}"] for n in (30, 31, 32)]
    assert f"10.0.15.30:9080          HEALTHY     OK                outbound|9080||{REVIEWS}" in table


def test_gateway_productpage_endpoints(gateway_hosts: ClustersStatus) -> None:
    table = views.endpoint(gateway_hosts, EndpointFilter(), "short")
    grep = [line.split() for line in table.splitlines() if "productpage" in line]
    assert grep == [
        ["10.0.15.34:9080", "HEALTHY", "OK", f"outbound_.9080_._.{PRODUCTPAGE}"],
        ["10.0.15.34:9080", "HEALTHY", "OK", f"outbound|9080||{PRODUCTPAGE}"],
    ]


def test_gateway_productpage_cluster_table(gateway: ConfigDump) -> None:
    table = views.cluster(gateway, ClusterFilter(fqdn=PRODUCTPAGE), "1.3", "short")
    assert [line.split() for line in table.splitlines()[1:]] == [
        [f"outbound_.9080_._.{PRODUCTPAGE}", "-", "-", "-", "EDS"],
        [PRODUCTPAGE, "9080", "-", "outbound", "EDS"],
    ]


# ---------------------------------------------------------------- the seed's JSON


def _json(text: str) -> Any:
    assert text.endswith("\n")
    return json.loads(text)


def test_gateway_listener_80_json(gateway: ConfigDump) -> None:
    (listener,) = _json(views.listener(gateway, ListenerFilter(port=80), "1.3", "json"))
    assert list(listener) == ["name", "address", "filterChains", "trafficDirection"]
    assert listener["name"] == "0.0.0.0_80"
    http = listener["filterChains"][0]["filters"][0]
    assert http["name"] == "envoy.filters.network.http_connection_manager"
    assert http["typedConfig"]["rds"]["routeConfigName"] == "http.80"
    assert listener["trafficDirection"] == "OUTBOUND"


def test_gateway_route_json(gateway: ConfigDump) -> None:
    (route,) = _json(views.route(gateway, RouteFilter(name="http.80"), "1.3", "json"))
    vhost = route["virtualHosts"][0]
    assert (vhost["name"], vhost["domains"]) == ("*:80", ["*", "*:80"])
    assert vhost["routes"][0]["match"] == {"path": "/productpage", "caseSensitive": True}
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|9080||{PRODUCTPAGE}"
    assert route["validateClusters"] is False


def test_sidecar_productpage_clusters_json(sidecar: ConfigDump) -> None:
    outbound, inbound = _json(views.cluster(sidecar, ClusterFilter(fqdn=PRODUCTPAGE), "1.3", "json"))
    # the key order of the seed's JSON is protobuf declaration order, not Envoy's field-number order
    assert list(outbound) == ["name", "type", "edsClusterConfig", "connectTimeout", "circuitBreakers"]
    assert outbound["edsClusterConfig"]["serviceName"] == outbound["name"] == f"outbound|9080||{PRODUCTPAGE}"
    assert outbound["circuitBreakers"] == {"thresholds": [{"maxRetries": 1024}]}
    assert list(inbound) == ["name", "type", "connectTimeout", "loadAssignment", "circuitBreakers"]
    assert inbound["circuitBreakers"] == {"thresholds": [{}]}
    socket = inbound["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"][
        "socketAddress"
    ]
    assert socket == {"address": "127.0.0.1", "portValue": 9080}


def test_sidecar_route_9080_reviews_vhost(sidecar: ConfigDump) -> None:
    (route,) = _json(views.route(sidecar, RouteFilter(name="9080"), "1.3", "json"))
    vhost = next(v for v in route["virtualHosts"] if v["name"] == f"{REVIEWS}:9080")
    assert vhost["domains"] == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews",
        "reviews:9080",
        "reviews.default.svc.cluster",
        "reviews.default.svc.cluster:9080",
        "reviews.default.svc",
        "reviews.default.svc:9080",
        "reviews.default",
        "reviews.default:9080",
        "169.169.236.122",
        "169.169.236.122:9080",
    ]
    default = vhost["routes"][0]
    assert list(default)[:2] == ["name", "match"]  # "name": "default" first, as in the seed
    assert default["route"]["retryPolicy"] == {
        "retryOn": seed_dumps.RETRY_POLICY["retry_on"],
        "numRetries": 2,
        "retryHostPredicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
        "hostSelectionRetryMaxAttempts": "5",
        "retriableStatusCodes": [503],
    }


def test_sidecar_virtual_listeners_json(sidecar: ConfigDump) -> None:
    (outbound,) = _json(views.listener(sidecar, ListenerFilter(port=15001), "1.3", "json"))
    assert outbound["name"] == "virtualOutbound" and outbound["useOriginalDst"] is True
    blackhole = outbound["filterChains"][0]
    assert blackhole["filterChainMatch"] == {
        "prefixRanges": [{"addressPrefix": "10.0.15.34", "prefixLen": 32}]
    }
    assert blackhole["filters"][0]["typedConfig"]["cluster"] == "BlackHoleCluster"
    (inbound,) = _json(views.listener(sidecar, ListenerFilter(port=15006), "1.3", "json"))
    inline = inbound["filterChains"][1]["filters"][0]["typedConfig"]["routeConfig"]
    assert inline["name"] == f"inbound|9080|http|{PRODUCTPAGE}"
    assert inline["virtualHosts"][0]["routes"][0]["route"]["cluster"] == f"inbound|9080|http|{PRODUCTPAGE}"


def test_json_is_four_space_indented(gateway: ConfigDump) -> None:
    text = views.listener(gateway, ListenerFilter(port=80), "1.3", "json")
    assert text.startswith('[\n    {\n        "name": "0.0.0.0_80",\n')


# ---------------------------------------------------------------- filters


def test_listener_filters(sidecar: ConfigDump) -> None:
    def rows(flt: ListenerFilter) -> list[list[str]]:
        return [line.split() for line in views.listener(sidecar, flt, "1.3", "short").splitlines()[1:]]

    assert rows(ListenerFilter(address="10.0.15.34")) == [["10.0.15.34", "9080", "HTTP"]]
    assert rows(ListenerFilter(type="http")) == [["10.0.15.34", "9080", "HTTP"], ["0.0.0.0", "15090", "HTTP"]]
    assert rows(ListenerFilter(address="0.0.0.0", port=15006)) == [["0.0.0.0", "15006", "TCP"]]
    assert rows(ListenerFilter(port=1)) == []


def test_route_name_filter(sidecar: ConfigDump) -> None:
    table = views.route(sidecar, RouteFilter(name="9080"), "1.3", "short")
    assert table.splitlines()[1:] == ["NAME     VIRTUAL HOSTS", "9080     5"]


def test_routes_sort_numerically(sidecar: ConfigDump) -> None:
    table = views.route(sidecar, RouteFilter(), "1.3", "short")
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["80", "9080", "15010"]


def test_cluster_filters(sidecar: ConfigDump) -> None:
    def names(flt: ClusterFilter) -> list[str]:
        return [c["name"] for c in _json(views.cluster(sidecar, flt, "1.3", "json"))]

    assert names(ClusterFilter(direction="inbound")) == [f"inbound|9080|http|{PRODUCTPAGE}"]
    assert names(ClusterFilter(port=443)) == ["outbound|443||kubernetes.default.svc.cluster.local"]
    assert names(ClusterFilter(fqdn="reviews", direction="outbound", port=9080)) == [
        f"outbound|9080||{REVIEWS}"
    ]


def test_cluster_subset_filter() -> None:
    raw = seed_dumps.productpage_config_dump()
    section = next(c for c in raw["configs"] if c["@type"].endswith("ClustersConfigDump"))
    for subset in ("v2", "v1"):
        cluster = copy.deepcopy(section["dynamic_active_clusters"][0])
        cluster["cluster"]["name"] = f"outbound|9080|{subset}|{REVIEWS}"
        section["dynamic_active_clusters"].append(cluster)
    table = views.cluster(ConfigDump.from_json(raw), ClusterFilter(fqdn="reviews"), "1.3", "short")
    assert [line.split()[:4] for line in table.splitlines()[1:]] == [
        [REVIEWS, "9080", "-", "outbound"],
        [REVIEWS, "9080", "v1", "outbound"],
        [REVIEWS, "9080", "v2", "outbound"],
    ]
    only_v1 = views.cluster(ConfigDump.from_json(raw), ClusterFilter(subset="v1"), "1.3", "short")
    assert [line.split()[2] for line in only_v1.splitlines()[1:]] == ["v1"]


def test_endpoint_filters(sidecar_hosts: ClustersStatus) -> None:
    def rows(flt: EndpointFilter) -> list[str]:
        return [line.split()[0] for line in views.endpoint(sidecar_hosts, flt, "short").splitlines()[1:]]

    assert rows(EndpointFilter(cluster=f"OUTBOUND|9080||{REVIEWS}")) == [
        f"10.0.15.{n}:9080" for n in (30, 31, 32)
    ]
    assert rows(EndpointFilter(address="10.0.15.31")) == ["10.0.15.31:9080"]
    assert rows(EndpointFilter(port=15010)) == ["10.0.15.5:15010", "169.169.200.10:15010"]
    assert rows(EndpointFilter(status="unhealthy")) == []
    assert len(rows(EndpointFilter(status="HEALTHY"))) == 12


def test_endpoint_status_and_outlier_columns() -> None:
    raw = seed_dumps.productpage_clusters()
    reviews = next(s for s in raw["cluster_statuses"] if s["name"] == f"outbound|9080||{REVIEWS}")
    reviews["host_statuses"][1]["health_status"] = {
        "eds_health_status": "UNHEALTHY",
        "failed_outlier_check": True,
    }
    del reviews["host_statuses"][2]["health_status"]
    status = ClustersStatus.from_json(raw)
    table = views.endpoint(status, EndpointFilter(cluster=f"outbound|9080||{REVIEWS}"), "short")
    assert [line.split()[:3] for line in table.splitlines()[1:]] == [
        ["10.0.15.30:9080", "HEALTHY", "OK"],
        ["10.0.15.31:9080", "UNHEALTHY", "FAILED"],
        ["10.0.15.32:9080", "UNKNOWN", "OK"],
    ]
    (unhealthy,) = _json(views.endpoint(status, EndpointFilter(status="unhealthy"), "json"))
    assert unhealthy["name"] == f"outbound|9080||{REVIEWS}" and len(unhealthy["hostStatuses"]) == 3


def test_no_listeners_is_an_error() -> None:
    with pytest.raises(ConfigDumpError, match="no listeners found"):
        views.listener(ConfigDump.from_json({"configs": []}), ListenerFilter(), "1.3", "short")


# ---------------------------------------------------------------- goldens: every view, both profiles


def _every_view(dump: ConfigDump, hosts: ClustersStatus, profile: Profile) -> str:
    sections = [
        ("listener", views.listener(dump, ListenerFilter(), profile, "short")),
        ("route", views.route(dump, RouteFilter(), profile, "short")),
        ("cluster", views.cluster(dump, ClusterFilter(), profile, "short")),
        ("endpoint", views.endpoint(hosts, EndpointFilter(), "short")),
        ("bootstrap -o short", views.bootstrap_view(dump, "short")),
    ]
    return "".join(f"$ proxy-config {name} --profile {profile}\n{text}\n" for name, text in sections)


@pytest.mark.parametrize("profile", PROFILES)
def test_sidecar_golden(
    request: pytest.FixtureRequest, sidecar: ConfigDump, sidecar_hosts: ClustersStatus, profile: Profile
) -> None:
    check_golden(
        request, GOLDEN / f"seed_productpage_{profile}.txt", _every_view(sidecar, sidecar_hosts, profile)
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_gateway_golden(
    request: pytest.FixtureRequest, gateway: ConfigDump, gateway_hosts: ClustersStatus, profile: Profile
) -> None:
    check_golden(
        request, GOLDEN / f"seed_gateway_{profile}.txt", _every_view(gateway, gateway_hosts, profile)
    )


def test_gateway_route_json_golden(request: pytest.FixtureRequest, gateway: ConfigDump) -> None:
    text = views.route(gateway, RouteFilter(name="http.80"), "1.3", "json")
    check_golden(request, GOLDEN / "seed_gateway_route_http.80.json", text)


def test_sidecar_yaml_golden(request: pytest.FixtureRequest, sidecar: ConfigDump) -> None:
    text = views.cluster(sidecar, ClusterFilter(fqdn=PRODUCTPAGE), "modern", "yaml")
    check_golden(request, GOLDEN / "seed_productpage_clusters.yaml", text)
