"""Modern-profile route configurations drop the Host port before matching (their domains carry none);
the trace found requests with `Host: reviews:9080` falling through to PassthroughCluster without it."""

from __future__ import annotations

import pytest

from pilotfish.pipeline import offline_resources
from tests.unit.simulate.conftest import scenario_mesh


@pytest.mark.parametrize(("deployment", "namespace"), [("productpage-v1", "default"),
                                                       ("istio-ingressgateway", "istio-system")])
def test_modern_routes_ignore_the_port(deployment: str, namespace: str) -> None:
    resources = offline_resources(scenario_mesh("modern-test-v2"), f"deploy/{deployment}", namespace)
    assert resources.routes.names()
    assert all(r.message.ignore_port_in_host_matching for r in resources.routes)
    legacy = offline_resources(scenario_mesh("test-v2"), f"deploy/{deployment}", namespace)
    assert not any(r.message.ignore_port_in_host_matching for r in legacy.routes)
