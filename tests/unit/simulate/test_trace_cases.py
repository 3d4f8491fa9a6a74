"""The trace cases (tests/trace_cases.py) against the offline simulator: the first Envoy's access
log (upstream cluster, response flags, own status code) and where each request ends."""

from __future__ import annotations

import pytest

from pilotfish.cli.trace import find_pod, resolve_source
from pilotfish.simulate.request import build_request
from pilotfish.simulate.result import Trace
from pilotfish.simulate.walk import simulate
from tests.trace_cases import CASES, SCENARIOS, Case, expand
from tests.unit.simulate.conftest import scenario_mesh, scenario_source


def run_case(case: Case) -> Trace:
    mesh = scenario_mesh(case.scenario)
    source = scenario_source(case.scenario)
    url = expand(case.url, mesh)
    namespace = "legacy" if case.source.startswith("deploy/legacy") else "default"
    origin = resolve_source(mesh, source, case.source, namespace, url, case.gateway_port)
    request = build_request(origin, url, case.method, case.headers)
    return simulate(mesh, source, request, case.pick)


def test_enough_distinct_cases() -> None:
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    requests = {(c.scenario, c.source, c.url, c.headers, c.method, c.pick) for c in CASES}
    assert len(requests) == len(CASES) >= 30
    assert {c.scenario for c in CASES} == set(SCENARIOS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    trace = run_case(case)
    outcome = trace.outcome
    summary = f"{outcome.end.value} {outcome.status_code} {outcome.response_flags}: {outcome.summary}"
    assert outcome.end.value == case.end, summary
    first = outcome.first_log
    if case.cluster is None:
        assert first is None, first
        assert outcome.response_flags == case.flags, summary
    else:
        assert first is not None, summary
        assert (first.upstream_cluster, first.response_flags, first.response_code) == (
            case.cluster,
            case.flags,
            case.code,
        ), summary
    assert outcome.status_code == case.code
    if case.reached:
        mesh = scenario_mesh(case.scenario)
        assert outcome.reached.startswith(expand(case.reached, mesh)), summary
    if not outcome.ok:
        failed = trace.failed_hop
        assert failed is not None or outcome.end.value == "bypass", summary
        assert outcome.fix, summary


def test_find_pod_forms() -> None:
    mesh = scenario_mesh("bookinfo")
    pod = find_pod(mesh, "deploy/productpage-v1", "default")
    assert find_pod(mesh, pod.name, "default") == pod
    assert find_pod(mesh, f"{pod.name}.default", "other") == pod
    assert find_pod(mesh, "productpage-v1", "default") == pod
    assert find_pod(mesh, "productpage", "default") == pod
