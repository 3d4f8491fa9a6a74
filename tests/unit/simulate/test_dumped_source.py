"""`DumpedSource`: the walk over what an Envoy's admin API reports gives the same trace as over the
generated config. The dumps are the pipeline's offline `/config_dump?include_eds` (the JSON a live
Envoy shows for the same resources), so every trace case must come out identical."""

from __future__ import annotations

import json
from functools import cache

import pytest

from pilotfish.cli.trace import resolve_source
from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError
from pilotfish.model.service import Workload
from pilotfish.pipeline import offline_dumps
from pilotfish.simulate.request import build_request
from pilotfish.simulate.source import DumpedSource, MixedSource, ProxyConfig
from pilotfish.simulate.walk import simulate
from tests.trace_cases import CASES, Case, expand
from tests.unit.simulate.conftest import scenario_mesh, scenario_source


@cache
def dumped(scenario: str) -> DumpedSource:
    mesh = scenario_mesh(scenario)

    def fetch(workload: Workload) -> ConfigDump:
        dump, _ = offline_dumps(mesh, workload.name, workload.namespace)
        return ConfigDump.from_json(json.loads(json.dumps(dump)))  # as text would arrive

    return DumpedSource(fetch, "dumps")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_walk_over_config_dumps_equals_the_offline_walk(case: Case) -> None:
    mesh = scenario_mesh(case.scenario)
    url = expand(case.url, mesh)
    namespace = "legacy" if case.source.startswith("deploy/legacy") else "default"
    offline = scenario_source(case.scenario)
    origin = resolve_source(mesh, offline, case.source, namespace, url, case.gateway_port)
    request = build_request(origin, url, case.method, case.headers)
    expected = simulate(mesh, offline, request, case.pick)
    assert simulate(mesh, dumped(case.scenario), request, case.pick) == expected


def test_the_dump_keeps_every_resource() -> None:
    mesh = scenario_mesh("dr-all")
    page = next(w for w in mesh.workloads if w.deployment == "productpage-v1")
    live = dumped("dr-all").proxy_config(page)
    generated = scenario_source("dr-all").proxy_config(page)
    assert set(generated.listeners) <= set(live.listeners)  # plus the bootstrap's static ones
    assert set(generated.routes) == set(live.routes)
    assert set(generated.clusters) <= set(live.clusters)
    assert set(generated.endpoints) <= set(live.endpoints)
    for name, message in generated.clusters.items():
        assert live.clusters[name] == message, name


def test_warming_and_failed_listeners_are_not_used() -> None:
    dump = ConfigDump.from_json({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "dynamic_listeners": [
            {"name": "a", "active_state": {"listener": {"name": "a", "address": {
                "socket_address": {"address": "0.0.0.0", "port_value": 1}}}}},
            {"name": "b", "warming_state": {"listener": {"name": "b"}}},
            {"name": "c", "error_state": {"failed_configuration": {"name": "c"}}},
        ]}]})
    assert list(ProxyConfig.from_config_dump(dump).listeners) == ["a"]


def test_an_unparsable_resource_is_a_config_dump_error() -> None:
    dump = ConfigDump.from_json({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "dynamic_active_clusters": [{"cluster": {"name": "x", "connect_timeout": "soon"}}]}]})
    with pytest.raises(ConfigDumpError, match="Cluster x"):
        ProxyConfig.from_config_dump(dump)


def test_mixed_source_takes_live_pods_from_the_dumps() -> None:
    mesh = scenario_mesh("bookinfo")
    page = next(w for w in mesh.workloads if w.deployment == "productpage-v1")
    other = next(w for w in mesh.workloads if w.deployment == "details-v1")
    calls: list[str] = []

    def fetch(workload: Workload) -> ConfigDump:
        calls.append(workload.name)
        dump, _ = offline_dumps(mesh, workload.name, workload.namespace)
        return ConfigDump.from_json(dump)

    mixed = MixedSource(DumpedSource(fetch, "live"), frozenset({("default", page.name)}),
                        scenario_source("bookinfo"))
    mixed.proxy_config(page)
    mixed.proxy_config(page)
    mixed.proxy_config(other)
    assert calls == [page.name]
    assert "live" in mixed.description
