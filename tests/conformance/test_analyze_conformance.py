"""Istio's analyzer test cases (tests/data/conformance/istio-analyze/expected.json) against pilotfish.

Each case loads its input files plus `default-resources.yaml` (the ingress gateway pod and Service
Istio's harness adds), with the default mesh config or the case's `meshConfigFile`, runs only the
named analyzer, and compares the (code, resource) multiset exactly. Every analyzer named in the table
is implemented, so every case runs.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from pilotfish.analyze.analyzers import BY_NAME, run
from pilotfish.analyze.context import AnalysisContext, context_from_texts
from pilotfish.config.diagnostics import Diagnostic
from tests.paths import CONFORMANCE

DATA = CONFORMANCE / "istio-analyze"
CASES: list[dict[str, Any]] = json.loads((DATA / "expected.json").read_text())
NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""Fixed, so the certificate-expiry case does not depend on the day the tests run."""


def _texts(names: list[str]) -> list[tuple[str, str]]:
    return [(name, (DATA / name).read_text()) for name in names]


def analyze_case(case: dict[str, Any]) -> tuple[AnalysisContext, list[Diagnostic]]:
    texts = _texts([*case["inputFiles"], "default-resources.yaml"])
    mesh_file = case.get("meshConfigFile")
    mesh_text = (mesh_file, (DATA / mesh_file).read_text()) if mesh_file else None
    context = context_from_texts(texts, mesh_text, now=NOW)
    return context, run(context, [BY_NAME[case["analyzer"]]])


def istio_resource(context: AnalysisContext, diagnostic: Diagnostic) -> str:
    """The resource as Istio's test names it: `Kind name` when the input gave no namespace."""
    ref = diagnostic.resource
    assert ref is not None, diagnostic
    given = any(
        r.kind == ref.kind and r.name == ref.name and r.namespace == ref.namespace and r.namespace_given
        for r in context.resources
    )
    return str(ref) if given or not ref.namespace else f"{ref.kind} {ref.name}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    context, found = analyze_case(case)
    actual = Counter((d.code, istio_resource(context, d)) for d in found)
    expected = Counter((e["code"], e["resource"]) for e in case["expected"])
    assert actual == expected, "\n".join(str(d) for d in found)


def test_every_case_has_its_analyzer() -> None:
    missing = sorted({c["analyzer"] for c in CASES} - set(BY_NAME))
    assert not missing
    assert len(CASES) == 62


def test_levels_match_istio() -> None:
    """Each expected message's level is the level pilotfish's catalogue gives its code."""
    from pilotfish.analyze.messages import BY_CODE

    for case in CASES:
        for expected in case["expected"]:
            message = BY_CODE[expected["code"]]
            assert message.name == expected["messageType"]
            assert message.level.value.capitalize() == expected["level"]
