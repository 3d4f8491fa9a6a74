"""Virtual host domains, Istio 1.3 and modern (istio-reference.md §4.3 examples)."""

from __future__ import annotations

from pilotfish.model.protocol import Protocol
from pilotfish.model.service import Service, ServicePort
from pilotfish.xds.routes import _domains_13, _modern_domains, alt_hosts_13

REVIEWS = Service(
    hostname="reviews.default.svc.cluster.local",
    name="reviews",
    namespace="default",
    address="10.0.0.31",
    ports=(ServicePort("http", 9080, Protocol.HTTP),),
)


def test_seed_domains_from_the_same_namespace() -> None:
    assert _domains_13(REVIEWS, 9080, "default.svc.cluster.local") == [
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
        "10.0.0.31",
        "10.0.0.31:9080",
    ]


def test_domains_from_another_namespace() -> None:
    assert _domains_13(REVIEWS, 9080, "foo.svc.cluster.local") == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews.default",
        "reviews.default:9080",
        "reviews.default.svc.cluster",
        "reviews.default.svc.cluster:9080",
        "reviews.default.svc",
        "reviews.default.svc:9080",
        "10.0.0.31",
        "10.0.0.31:9080",
    ]


def test_non_kubernetes_alt_hosts() -> None:
    assert sorted(alt_hosts_13("foo.local.campus.net", "local.campus.net")) == [
        "foo",
        "foo.local",
        "foo.local.campus",
    ]
    assert sorted(alt_hosts_13("foo.local.campus.net", "remote.campus.net")) == [
        "foo.local",
        "foo.local.campus",
    ]
    assert alt_hosts_13("foo.local.campus.net", "example.com") == []


def test_modern_domains() -> None:
    assert _modern_domains(REVIEWS, "default.svc.cluster.local") == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",
        "reviews",
        "reviews.default.svc",
        "reviews.default",
        "10.0.0.31",
    ]
    assert _modern_domains(REVIEWS, "foo.svc.cluster.local") == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",
        "reviews.default",
        "reviews.default.svc",
        "10.0.0.31",
    ]
