"""Golden bootstraps of `pilotfish agent` (each one is also fed to `envoy --mode validate`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotfish.agent.bootstrap import bootstrap_json, build_bootstrap
from pilotfish.agent.options import AgentOptions, UnixAddress, XdsFlavour, parse_address
from pilotfish.model.names import ProxyType
from tests.golden import check_golden

GOLDEN_DIR = Path(__file__).parent / "agent"

CASES: dict[str, AgentOptions] = {
    # A sidecar in a sandbox pod: xDS and admin over unix sockets in the shared run directory.
    "sidecar_sotw_unix": AgentOptions(
        proxy_type=ProxyType.SIDECAR,
        pod_name="reviews-v1-5b9d7d4f4d-abcde",
        namespace="default",
        ip="10.44.0.11",
        discovery=UnixAddress("/run/pilotfish/xds.sock"),
        admin=UnixAddress("/run/pilotfish/reviews-v1-5b9d7d4f4d-abcde/admin.sock"),
        labels=(("app", "reviews"), ("version", "v1")),
        xds=XdsFlavour.SOTW,
        service_account="bookinfo-reviews",
        pod_ports=(9080,),
    ),
    # The ingress gateway: delta ADS over TCP, Istio's default ports.
    "router_delta_tcp": AgentOptions(
        proxy_type=ProxyType.ROUTER,
        pod_name="istio-ingressgateway-7d8f9c6c8b-xyz12",
        namespace="istio-system",
        ip="10.44.0.10",
        discovery=parse_address("127.0.0.1:15010", "--discovery"),
        labels=(("app", "istio-ingressgateway"), ("istio", "ingressgateway")),
    ),
}


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"bootstrap_{name}.json"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bootstrap_golden(request: pytest.FixtureRequest, name: str) -> None:
    check_golden(request, golden_path(name), bootstrap_json(CASES[name]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bootstrap_json_is_the_dict(name: str) -> None:
    assert json.loads(bootstrap_json(CASES[name])) == build_bootstrap(CASES[name])
