"""What the trace says must change when a request fails, and where the matched config came from."""

from __future__ import annotations

import pytest

from pilotfish.simulate.result import Step
from tests.trace_cases import CASES
from tests.unit.simulate.test_trace_cases import run_case

CASE = {c.id: c for c in CASES}
NET = "tests/data/conformance/istio-samples/bookinfo/networking"


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [
        (
            "v4-missing-subset",
            [
                f"DestinationRule default/reviews ({NET}/destination-rule-all.yaml:12) has no subset v4 "
                "(it has: v1, v2, v3): add subset v4 to DestinationRule default/reviews",
                "the destination of VirtualService default/reviews http[0] (inline/v4-0.yaml:12)",
            ],
        ),
        (
            "all-v1-without-dr",
            [
                "no DestinationRule applies to reviews.default.svc.cluster.local, so subset v1 has no "
                "cluster: add a DestinationRule for host reviews with subset v1",
                f"VirtualService default/reviews http[0] ({NET}/virtual-service-all-v1.yaml:",
            ],
        ),
        (
            "details-v2-no-pods",
            [
                "no pod of Service default/details has the labels of subset v2 (version=v2) in "
                f"DestinationRule default/details ({NET}/destination-rule-all.yaml:",
                "details-v1-",
            ],
        ),
        ("empty-subset", ["has the labels of subset v9 (version=v9)"]),
        (
            "registry-only-http",
            [
                "REGISTRY_ONLY and example.com is not in the service registry: add a ServiceEntry for "
                "example.com with port 80",
            ],
        ),
        ("registry-only-other-port", ["add a ServiceEntry for example.com with port 8443"]),
        ("sidecar-registry-only", ["the outboundTrafficPolicy of Sidecar default/default (inline/"]),
        ("no-sidecar-to-cluster-ip", ["has no sidecar: enable injection for it"]),
        (
            "ingress-unknown-path",
            [
                "no route of virtual host *:80 matches GET /admin - its routes come from VirtualService "
                "default/bookinfo (samples/bookinfo/bookinfo-gateway.yaml:"
            ],
        ),
        ("hosted-gateway-wrong-host", ["add other.example.com to the hosts of the Gateway server"]),
        ("gateway-no-listener", ["no Gateway server on port 9999 selects this gateway (labels "]),
        (
            "abort-jason",
            [f"VirtualService default/ratings http[0].match[0] ({NET}/virtual-service-ratings-test-abort"],
        ),
        ("tcp-to-http-port", ["declare the service port's protocol"]),
        ("excluded-outbound-range", ["do not capture this connection"]),
    ],
)
def test_fix_names_the_object(case_id: str, expected: list[str]) -> None:
    fix = run_case(CASE[case_id]).outcome.fix
    for text in expected:
        assert text in fix


def test_route_and_cluster_origins() -> None:
    trace = run_case(CASE["test-v2-jason"])
    route = next(h for h in trace.hops if h.step is Step.ROUTE)
    assert route.origin == (
        f"VirtualService default/reviews http[0].match[0] ({NET}/virtual-service-reviews-test-v2.yaml:10)"
    )
    cluster = next(h for h in trace.hops if h.step is Step.CLUSTER)
    assert cluster.origin == f"DestinationRule default/reviews ({NET}/destination-rule-all.yaml:12)"
    anonymous = run_case(CASE["test-v2-anonymous"])
    route = next(h for h in anonymous.hops if h.step is Step.ROUTE)
    assert route.origin.startswith("VirtualService default/reviews http[1] (")


def test_default_route_says_no_virtual_service() -> None:
    trace = run_case(CASE["pp-reviews-default"])
    outbound_route = next(h for h in trace.hops if h.step is Step.ROUTE)
    assert outbound_route.origin == "default route (no VirtualService for this host)"


def test_weighted_candidates_are_all_listed() -> None:
    trace = run_case(CASE["50-v3-heaviest"])
    weighted = next(h for h in trace.hops if h.step is Step.WEIGHTED)
    assert [(c.name.split("|")[2], c.weight, c.chosen) for c in weighted.candidates] == [
        ("v1", 50, True),
        ("v3", 50, False),
    ]
    assert "50%" in weighted.candidates[1].detail


def test_partial_fault_is_a_note_not_the_path() -> None:
    trace = run_case(CASE["vs-query-needs-post"])
    assert not [h for h in trace.hops if h.step is Step.FAULT]
    delayed = run_case(CASE["delay-jason"])
    fault = next(h for h in delayed.hops if h.step is Step.FAULT)
    assert fault.name == "delay 7s" and delayed.outcome.response_flags == "DI"
