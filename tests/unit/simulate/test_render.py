"""Renderers: text and dot goldens for the seed's path, JSON shape, and the SVG Graphviz makes of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from pilotfish.simulate.dot import render_dot
from pilotfish.simulate.render import render_json, render_text
from pilotfish.simulate.result import Trace
from tests.paths import REPO
from tests.trace_cases import CASES
from tests.unit.simulate.test_trace_cases import run_case

GOLDEN = REPO / "tests" / "golden" / "trace"
CASE = {c.id: c for c in CASES}
SHOWN = ("test-v2-jason", "v4-missing-subset", "ingress-productpage", "registry-only-http")


def _trace(case_id: str) -> Trace:
    return run_case(CASE[case_id])


@pytest.mark.parametrize("case_id", SHOWN)
def test_text_golden(request: pytest.FixtureRequest, case_id: str) -> None:
    from tests.golden import check_golden

    check_golden(request, GOLDEN / f"{case_id}.txt", render_text(_trace(case_id)))


@pytest.mark.parametrize("case_id", ("test-v2-jason", "v4-missing-subset"))
def test_dot_golden(request: pytest.FixtureRequest, case_id: str) -> None:
    from tests.golden import check_golden

    check_golden(request, GOLDEN / f"{case_id}.dot", render_dot(_trace(case_id)))


def test_json_shape() -> None:
    data = json.loads(render_json(_trace("v4-missing-subset"), "offline"))
    assert data["config_source"] == "offline"
    assert data["request"]["source_kind"] == "pod"
    assert [h["step"] for h in data["hops"]][:4] == ["client", "dns", "iptables", "listener"]
    failed = [h for h in data["hops"] if h["status"] == "fail"]
    assert len(failed) == 1 and failed[0]["step"] == "cluster"
    outcome = data["outcome"]
    assert (outcome["ok"], outcome["status_code"], outcome["response_flags"]) == (False, 503, "NC")
    assert outcome["logs"][0]["upstream_cluster"] == "-"
    assert "add subset v4 to DestinationRule default/reviews" in outcome["fix"]


def test_text_names_the_fix_and_the_failure() -> None:
    text = render_text(_trace("v4-missing-subset"))
    assert "FAILS: 503 NC" in text
    assert "first failure: cluster outbound|9080|v4|reviews.default.svc.cluster.local" in text
    assert "destination-rule-all.yaml:" in text and "inline/v4-0.yaml:" in text


def _svg_texts(svg: bytes) -> str:
    root = ET.fromstring(svg)  # valid XML or this raises
    return "\n".join("".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize(
    "case_id",
    ("test-v2-jason", "v4-missing-subset", "ingress-productpage", "50-v3-heaviest", "tcp-echo-ingress"),
)
def test_svg_is_valid_and_names_every_hop(case_id: str) -> None:
    trace = _trace(case_id)
    svg = subprocess.run(
        ["dot", "-Tsvg"], input=render_dot(trace).encode(), capture_output=True, check=True
    ).stdout
    texts = _svg_texts(svg)
    missing = [hop.name for hop in trace.hops if hop.name not in texts]
    assert not missing
    for hop in trace.hops:
        for candidate in hop.candidates:
            assert candidate.name in texts
    if not trace.outcome.ok:
        assert "#c0392b" in svg.decode()  # the failure is drawn in red
