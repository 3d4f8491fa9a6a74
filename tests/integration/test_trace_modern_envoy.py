"""The modern profile's generated config (routes with ignore_port_in_host_matching) is accepted by
the real Envoy 1.40, for a sidecar and for the ingress gateway."""

from __future__ import annotations

import pytest

from pilotfish.pipeline import offline_resources
from tests.envoy_validate import envoy_validate
from tests.unit.simulate.conftest import scenario_mesh


@pytest.mark.envoy
@pytest.mark.parametrize(("deployment", "namespace"), [("productpage-v1", "default"),
                                                       ("istio-ingressgateway", "istio-system")])
def test_modern_config_is_accepted_by_envoy(deployment: str, namespace: str) -> None:
    resources = offline_resources(scenario_mesh("modern-test-v2"), f"deploy/{deployment}", namespace)
    accepted, output = envoy_validate(resources)
    assert accepted, output
