"""proxy-status rendering (tables, diff), the config_dump we serve, and the metrics text format."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pilotfish.inspect.sync_status import config_diff, matching, nack_lines, status_table
from pilotfish.server.debug import config_dump_json
from pilotfish.server.metrics import Metrics, render
from tests.golden import check_golden
from tests.xds_fake import FakeMesh, resources_of

GOLDEN = Path(__file__).parent.parent / "golden" / "server"


def entry(
    proxy: str, sent_acked: dict[str, tuple[str, str]], istio: str = "", **types: dict[str, Any]
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "proxy": proxy,
        "proxy_version": "1.40.0",
        "istio_version": istio,
        "istiod": "pilotfish",
        "cluster_id": "Kubernetes",
        "types": {},
    }
    for key, short in (("cluster", "CDS"), ("listener", "LDS"), ("endpoint", "EDS"), ("route", "RDS")):
        sent, acked = sent_acked.get(short, ("", ""))
        e[f"{key}_sent"], e[f"{key}_acked"] = sent, acked
        if short in sent_acked:
            status = "NOT SENT" if not sent else "SYNCED" if sent == acked else "STALE"
            e["types"][short] = {"status": status}
    e["types"].update(types)
    return e


ENTRIES = [
    entry(
        "reviews-v1-abc.default", {"CDS": ("2", "1"), "LDS": ("3", "3"), "EDS": ("4", ""), "RDS": ("", "")}
    ),
    entry(
        "productpage-v1-xyz.default",
        {"CDS": ("1", "1"), "LDS": ("2", "2"), "EDS": ("3", "3"), "RDS": ("4", "4")},
        istio="1.3.6",
    ),
    entry(
        "istio-ingressgateway-1.istio-system",
        {"CDS": ("7", "6"), "LDS": ("2", "2"), "EDS": ("3", "3")},
        CDS={
            "status": "NACK",
            "last_nack": {
                "version": "v6",
                "nonce": "7",
                "time": "2026-01-01T00:00:00.000Z",
                "message": "Invalid duration:\n seconds: -1",
            },
        },
    ),
]


@pytest.mark.parametrize("profile", ["1.3", "modern"])
def test_status_table(request: pytest.FixtureRequest, profile: str) -> None:
    check_golden(request, GOLDEN / f"proxy_status_{profile}.txt", status_table(ENTRIES, profile))


def test_status_table_rules() -> None:
    rows = [line.split("  ") for line in status_table(ENTRIES, "1.3").splitlines()]
    cells = [[c.strip() for c in row if c.strip()] for row in rows]
    assert cells[0] == ["NAME", "CDS", "LDS", "EDS", "RDS", "PILOT", "VERSION"]
    assert [c[0] for c in cells[1:]] == sorted(e["proxy"] for e in ENTRIES)
    gateway, productpage, reviews = cells[1:]
    assert gateway[1] == "NACK" and gateway[4] == "NOT SENT"
    assert productpage[1:5] == ["SYNCED"] * 4 and productpage[-1] == "1.3.6"
    assert reviews[1:5] == ["STALE", "SYNCED", "STALE (Never Acknowledged)", "NOT SENT"]
    assert reviews[-1] == "1.40.0*"  # no Istio version: the proxy's version, starred
    modern = [line.split() for line in status_table(ENTRIES, "modern").splitlines()]
    assert modern[1][2] == "ERROR" and modern[1][6] == "IGNORED"  # NACK; RDS never subscribed


def test_matching_and_nack_lines() -> None:
    assert [e["proxy"] for e in matching(ENTRIES, "reviews")] == ["reviews-v1-abc.default"]
    (gateway,) = matching(ENTRIES, "ingressgateway")
    assert nack_lines(gateway) == [
        "CDS NACK (version v6, nonce 7, at 2026-01-01T00:00:00.000Z): Invalid duration: seconds: -1"
    ]


def _dump(spec: dict[str, Any]) -> dict[str, Any]:
    mesh = FakeMesh.of(spec)
    return config_dump_json(resources_of(mesh.clusters, mesh.endpoints, mesh.listeners, mesh.routes), "v1")


SPEC: dict[str, Any] = {
    "router": {"port": 8080, "routes": [{"prefix": "/", "weights": {"a": 100}}]},
    "clusters": {"a": {"endpoints": ["127.0.0.1:9001"]}, "b": {"endpoints": ["127.0.0.1:9002"]}},
}


def test_config_dump_shape() -> None:
    dump = _dump(SPEC)
    types = [c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]]
    assert types == [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
        "RoutesConfigDump",
        "EndpointsConfigDump",
    ]
    clusters = dump["configs"][1]["dynamic_active_clusters"]
    assert [c["cluster"]["name"] for c in clusters] == [
        "outbound|80||a.default.svc.cluster.local",
        "outbound|80||b.default.svc.cluster.local",
    ]
    assert clusters[0]["cluster"]["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    listener = dump["configs"][2]["dynamic_listeners"][0]
    assert listener["name"] == "127.0.0.1_8080" and "listener" in listener["active_state"]


def test_config_diff_match_and_mismatch() -> None:
    envoy = _dump(SPEC)
    stamp = "2026-03-01T12:00:00Z"
    for route in envoy["configs"][3]["dynamic_route_configs"]:
        route["last_updated"] = stamp
    text, ok = config_diff(_dump(SPEC), envoy)
    loaded = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).astimezone()
    assert ok
    assert text.splitlines() == [
        "Clusters Match",
        "Listeners Match",
        f"Routes Match (RDS last loaded at {loaded.strftime('%a, %d %b %Y %H:%M:%S')} {loaded.tzname()})",
    ]
    changed = dict(SPEC, clusters={"a": {"endpoints": ["127.0.0.1:9001"], "connect_timeout": "3s"}})
    text, ok = config_diff(_dump(changed), _dump(SPEC))
    assert not ok
    lines = text.splitlines()
    assert lines[:2] == ["--- Pilot Clusters", "+++ Envoy Clusters"]
    assert '-      "connect_timeout": "3s",' in lines
    assert "Listeners Match" in lines
    assert lines[-1] == "Routes Match"  # no route timestamps in these dumps: no "(RDS last loaded ...)"
    moved = dict(SPEC, router={"port": 8080, "routes": [{"prefix": "/", "weights": {"b": 100}}]})
    text, ok = config_diff(_dump(moved), _dump(SPEC))
    assert text.splitlines()[2:5] == ["Routes Don't Match", "--- Pilot Routes", "+++ Envoy Routes"]


def test_metrics_render_uses_istio_counter_names() -> None:
    metrics = Metrics()
    metrics.pushes.labels("cds").inc()
    metrics.pushes.labels("cds").inc()
    metrics.xds.set(3)
    metrics.config_size.labels("eds").observe(2048)
    text = render(metrics.registry).decode()
    lines = text.splitlines()
    assert "# TYPE pilot_xds_pushes counter" in lines
    assert 'pilot_xds_pushes{type="cds"} 2' in lines
    assert "pilot_xds 3" in lines
    assert 'pilot_xds_config_size_bytes_bucket{le="10000.0",type="eds"} 1' in lines
    names = {line.split("{")[0].split(" ")[0] for line in lines if not line.startswith("#")}
    assert not any(name.endswith(("_total", "_created")) for name in names)
