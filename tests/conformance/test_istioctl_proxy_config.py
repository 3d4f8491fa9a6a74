"""istioctl's own proxy-config golden outputs, replayed through pilotfish.inspect.

Every entry of `../shared/conformance/istioctl-proxy-config/cases.json` is a test: `cases` (views printed
from a config dump, compared with the stated mode), `routeDomainsCases` (the DOMAINS abbreviation),
`listenerFilterCases` (listener filtering) and `errorCases`. These are modern-istioctl outputs, so the
views run with the "modern" profile.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pilotfish.inspect import views
from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError
from pilotfish.inspect.endpoints import EndpointFilter
from pilotfish.inspect.full import AllFilters
from pilotfish.inspect.listeners import ListenerFilter, verify
from pilotfish.inspect.profile import OutputFormat
from pilotfish.inspect.render import go_json
from pilotfish.inspect.routes import RouteFilter, describe_route_domains


def _find_data() -> Path:
    """The repository's copy (tests/data/conformance), else `shared/conformance` beside the checkout."""
    override = os.environ.get("PILOTFISH_CONFORMANCE")
    here = Path(__file__).resolve()
    candidates = [Path(override)] if override else []
    candidates.append(here.parents[1] / "data" / "conformance")
    candidates += [parent / "shared" / "conformance" for parent in here.parents]
    for candidate in candidates:
        if (candidate / "istioctl-proxy-config" / "cases.json").is_file():
            return candidate / "istioctl-proxy-config"
    return candidates[0] / "istioctl-proxy-config"


DATA = _find_data()
CASES: dict[str, Any] = json.loads((DATA / "cases.json").read_text()) if DATA.exists() else {}
# The golden files were recorded on a day when the istio leaf certificates had expired and the roots had not.
RECORDED_AT = datetime(2025, 4, 11, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not CASES, reason=f"conformance data not found at {DATA}")


def _output_of(command: str) -> OutputFormat:
    if "-o yaml" in command:
        return "yaml"
    if "-o json" in command:
        return "json"
    if "-o short" in command:
        return "short"
    return "json" if command.split()[2] == "bootstrap" else "short"


def _render(case: dict[str, Any], dump: ConfigDump) -> str:
    """Dispatch a case to the view istioctl's writer method corresponds to."""
    method: str = case["method"]
    output = _output_of(case["command"])
    flt = case.get("filter", {})
    renderers: dict[str, Callable[[], str]] = {
        "PrintBootstrapDump": lambda: views.bootstrap_view(dump, output),
        "PrintBootstrapSummary": lambda: views.bootstrap_view(dump, "short"),
        "PrintEcdsSummary": lambda: views.ecds_view(dump, "short"),
        "PrintEcds": lambda: views.ecds_view(dump, output),
        "PrintEndpointsSummary": lambda: views.eds(dump, EndpointFilter(port=flt.get("port", 0)), "short"),
        "PrintEndpoints": lambda: views.eds(dump, EndpointFilter(port=flt.get("port", 0)), output),
        "PrintRouteSummary": lambda: views.route(
            dump, RouteFilter(verbose=flt.get("verbose", True)), "modern", "short"
        ),
        "PrintSecretSummary": lambda: views.secret(dump, "short", RECORDED_AT),
        "PrintFullSummary": lambda: views.all_view(
            dump, AllFilters(), "short", RECORDED_AT, with_headers="withHeaders=true" in method
        ),
    }
    return renderers[method.split("(")[0]]()


def _compare(mode: str, actual: str, expected: str) -> None:
    if mode == "exact":
        assert actual == expected
    elif mode == "trimmed":
        assert actual.strip() == expected.strip()
    elif mode == "reindented-json":
        reindented = go_json(json.loads(actual)) + "\n"
        assert reindented.strip() == expected.strip()
    else:  # pragma: no cover - a new mode in the data
        pytest.fail(f"unknown compare mode {mode}")


@pytest.mark.parametrize("case", CASES.get("cases", []), ids=lambda c: c["name"])
def test_view(case: dict[str, Any]) -> None:
    dump = ConfigDump.from_text((DATA / case["configDump"]).read_text())
    expected = (DATA / case["expectedOutput"]).read_text()
    _compare(case["compare"], _render(case, dump), expected)


@pytest.mark.parametrize(
    "case", CASES.get("routeDomainsCases", {}).get("cases", []), ids=lambda c: c["desc"].replace(" ", "-")
)
def test_route_domains(case: dict[str, Any]) -> None:
    assert describe_route_domains(case["domains"]) == case["expected"]


@pytest.mark.parametrize(
    "case", CASES.get("listenerFilterCases", {}).get("cases", []), ids=lambda c: c["desc"]
)
def test_listener_filter(case: dict[str, Any]) -> None:
    spec = case["filter"]
    flt = ListenerFilter(address=spec.get("address", ""), port=spec.get("port", 0), type=spec.get("type", ""))
    assert verify(flt, case["listener"], "modern") is case["expect"]


@pytest.mark.parametrize("case", CASES.get("errorCases", []), ids=lambda c: c["desc"])
def test_error_case(case: dict[str, Any]) -> None:
    """Priming with empty input fails; printing the bootstrap without one (our "unprimed") fails."""
    assert case["expectError"] is True
    if "input" in case:
        with pytest.raises(ConfigDumpError, match="empty"):
            ConfigDump.from_text(case["input"])
        return
    unprimed = ConfigDump.from_json({"configs": []})
    for output in ("json", "short"):
        with pytest.raises(ConfigDumpError, match="no bootstrap"):
            views.bootstrap_view(unprimed, output)  # type: ignore[arg-type]
