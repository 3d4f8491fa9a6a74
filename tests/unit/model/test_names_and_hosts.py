from __future__ import annotations

import pytest

from pilotfish.config.types import Duration, parse_duration
from pilotfish.model import allocate, hosts
from pilotfish.model.names import ClusterKey, NodeId, ProxyType, resolve_short_host
from pilotfish.model.protocol import Protocol, protocol_of_port


def test_cluster_key_round_trip() -> None:
    key = ClusterKey.outbound(9080, "reviews.default.svc.cluster.local", "v1")
    assert key.name == "outbound|9080|v1|reviews.default.svc.cluster.local"
    assert key.sni == "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    assert ClusterKey.parse(key.name) == key
    assert ClusterKey.parse(key.sni) == key
    assert ClusterKey.parse("BlackHoleCluster") is None
    assert (
        ClusterKey.inbound(9080, "http", "x.default.svc.cluster.local").name
        == "inbound|9080|http|x.default.svc.cluster.local"
    )


def test_node_id() -> None:
    node = NodeId.for_pod(ProxyType.SIDECAR, "10.44.0.5", "reviews-v1-abc", "default")
    assert str(node) == "sidecar~10.44.0.5~reviews-v1-abc.default~default.svc.cluster.local"
    assert NodeId.parse(str(node)) == node
    with pytest.raises(ValueError, match="4 '~'-separated parts"):
        NodeId.parse("sidecar~1.2.3.4~x")
    with pytest.raises(ValueError, match="unknown proxy type"):
        NodeId.parse("waiter~1.2.3.4~x.y~y.svc.cluster.local")


def test_short_hosts() -> None:
    assert resolve_short_host("reviews", "default") == "reviews.default.svc.cluster.local"
    assert (
        resolve_short_host("reviews.other.svc.cluster.local", "default") == "reviews.other.svc.cluster.local"
    )
    assert resolve_short_host("*.example.com", "default") == "*.example.com"


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*", "anything.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "*.a.example.com", True),
        ("a.example.com", "*.example.com", False),
        ("a.example.com", "a.example.com", True),
    ],
)
def test_wildcard_cover(pattern: str, host: str, expected: bool) -> None:
    assert hosts.covers(pattern, host) is expected


def test_most_specific() -> None:
    assert (
        hosts.most_specific(["*", "*.com", "*.example.com", "x.example.com"], "x.example.com")
        == "x.example.com"
    )
    assert hosts.most_specific(["*", "*.com", "*.example.com"], "y.example.com") == "*.example.com"


@pytest.mark.parametrize(
    ("name", "app_protocol", "k8s", "port", "expected"),
    [
        ("http", "", "TCP", 9080, Protocol.HTTP),
        ("http-web", "", "TCP", 80, Protocol.HTTP),
        ("grpc-web", "", "TCP", 80, Protocol.GRPC_WEB),
        ("http2", "", "TCP", 80, Protocol.HTTP2),
        ("tcp-db", "", "TCP", 5432, Protocol.TCP),
        ("web", "", "TCP", 80, Protocol.UNSUPPORTED),
        ("", "", "TCP", 3306, Protocol.TCP),
        ("web", "http", "TCP", 80, Protocol.HTTP),
        ("web", "kubernetes.io/h2c", "TCP", 80, Protocol.HTTP2),
        ("dns", "", "UDP", 53, Protocol.UDP),
        ("HTTPS", "", "TCP", 443, Protocol.HTTPS),
    ],
)
def test_protocol_selection(name: str, app_protocol: str, k8s: str, port: int, expected: Protocol) -> None:
    assert protocol_of_port(name, app_protocol, k8s, port) is expected


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("10s", 10 * 10**9),
        ("0.5s", 5 * 10**8),
        ("1m30s", 90 * 10**9),
        ("250ms", 25 * 10**7),
        ("1h", 3600 * 10**9),
    ],
)
def test_durations(text: str, nanos: int) -> None:
    assert parse_duration(text) == Duration(nanos)


@pytest.mark.parametrize("text", ["5 seconds", "", "s", "10", "-1s", "1x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_addresses_are_deterministic_and_stable() -> None:
    first = allocate.allocate_addresses(["a", "b", "c"], allocate.POD_RANGE)
    again = allocate.allocate_addresses(["c", "a", "b"], allocate.POD_RANGE)
    assert first == again
    more = allocate.allocate_addresses(["a", "b", "c", "d"], allocate.POD_RANGE)
    assert {k: more[k] for k in first} == first
    assert len(set(more.values())) == 4
    assert all(not ip.startswith("10.44.0.") for ip in more.values())


def test_taken_addresses_are_avoided() -> None:
    first = allocate.allocate_addresses(["a"], allocate.POD_RANGE)
    other = allocate.allocate_addresses(["a"], allocate.POD_RANGE, taken=[first["a"]])
    assert other["a"] != first["a"]


def test_pod_names_like_kubernetes() -> None:
    template = allocate.template_hash("default", "productpage-v1", {"spec": 1})
    name = allocate.pod_name("productpage-v1", template, 0)
    assert name.startswith("productpage-v1-") and len(template) == 10
    assert name == allocate.pod_name("productpage-v1", template, 0)
    assert name != allocate.pod_name("productpage-v1", template, 1)
