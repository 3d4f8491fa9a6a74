"""`pilotfish analyze`: output formats, thresholds and exit codes (istioctl's: 0 clean or below the
failure threshold, 79 at or above it, 2 for usage errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pilotfish.analyze.analyzers import ALL
from pilotfish.cli.analyze import EXIT_FOUND_ISSUES
from pilotfish.cli.main import COMMANDS, cli
from tests.golden import check_golden
from tests.paths import CONFORMANCE, REPO

BASE = REPO / "tests" / "data" / "analyze" / "base.yaml"
ANALYZE_DATA = CONFORMANCE / "istio-analyze"

SUBSET_TYPO = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v4
"""

PORT_NAMED_WEB = """\
apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  selector: {app: details}
  ports:
  - {name: web, port: 9080}
"""

DEPRECATED_FIELD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {fixedDelay: 7s, percent: 100}
    route:
    - destination: {host: ratings}
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["analyze", *map(str, args)])


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    """A directory with the clean base mesh."""
    directory = tmp_path / "mesh"
    directory.mkdir()
    (directory / "base.yaml").write_text(BASE.read_text())
    return directory


def add(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_registered() -> None:
    assert ("analyze", "pilotfish.cli.analyze:analyze") in COMMANDS


def test_clean_input_exits_0_with_check_mark(mesh: Path) -> None:
    result = invoke(mesh)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"\u2714 No validation issues found when analyzing {mesh}.\n"


def test_error_text_like_istioctl_exits_79(mesh: Path) -> None:
    broken = add(mesh, "reviews.yaml", SUBSET_TYPO)
    result = invoke(mesh)
    assert result.exit_code == EXIT_FOUND_ISSUES == 79
    assert result.stdout.startswith(
        f"Error [IST0101] (VirtualService default/reviews {broken}:12) Referenced host+subset in "
        'destinationrule not found: "reviews+v4". Fix: '
    )
    assert result.stdout.count("\n") == 1


def test_warnings_and_infos_alone_exit_0(mesh: Path) -> None:
    add(mesh, "details.yaml", PORT_NAMED_WEB)
    add(mesh, "ratings.yaml", DEPRECATED_FIELD)
    result = invoke(mesh)
    assert result.exit_code == 0, result.output
    levels = [line.split(" ", 1)[0] for line in result.stdout.splitlines()]
    assert sorted(levels) == ["Info", "Warning"]


@pytest.mark.parametrize(("threshold", "code"), [("Warning", 79), ("info", 79), ("Error", 0)])
def test_failure_threshold(mesh: Path, threshold: str, code: int) -> None:
    add(mesh, "ratings.yaml", DEPRECATED_FIELD)
    assert invoke(mesh, "--failure-threshold", threshold).exit_code == code


def test_output_threshold_hides_lower_levels(mesh: Path) -> None:
    add(mesh, "details.yaml", PORT_NAMED_WEB)
    add(mesh, "ratings.yaml", DEPRECATED_FIELD)
    result = invoke(mesh, "--output-threshold", "Warning")
    assert [line[:17] for line in result.stdout.splitlines()] == ["Warning [IST0002]"]


def test_json_output(mesh: Path) -> None:
    broken = add(mesh, "reviews.yaml", SUBSET_TYPO)
    result = invoke("--manifests", mesh, "-o", "json")
    assert result.exit_code == 79
    records = json.loads(result.stdout)
    assert records == [
        {
            "code": "IST0101",
            "name": "ReferencedResourceNotFound",
            "level": "Error",
            "resource": "VirtualService default/reviews",
            "origin": f"{broken}:12",
            "path": "spec.http[0].route[0].destination.subset",
            "message": records[0]["message"],
        }
    ]
    assert records[0]["message"].startswith(
        'Referenced host+subset in destinationrule not found: "reviews+v4"'
    )


def test_json_output_when_clean_is_an_empty_list(mesh: Path) -> None:
    result = invoke(mesh, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_yaml_output_matches_json(mesh: Path) -> None:
    add(mesh, "reviews.yaml", SUBSET_TYPO)
    add(mesh, "details.yaml", PORT_NAMED_WEB)
    as_yaml = yaml.safe_load(invoke(mesh, "-o", "yaml").stdout)
    as_json = json.loads(invoke(mesh, "-o", "json").stdout)
    assert as_yaml == as_json
    assert [r["code"] for r in as_yaml] == ["IST0118", "IST0101"]


def test_analyzer_selection(mesh: Path) -> None:
    add(mesh, "reviews.yaml", SUBSET_TYPO)
    add(mesh, "details.yaml", PORT_NAMED_WEB)
    only_service = invoke(mesh, "--analyzer", "service.PortNameAnalyzer")
    assert only_service.exit_code == 0
    assert "IST0118" in only_service.stdout and "IST0101" not in only_service.stdout
    family = invoke(mesh, "--analyzer", "virtualservice")
    assert family.exit_code == 79
    assert "IST0101" in family.stdout and "IST0118" not in family.stdout


def test_unknown_analyzer_is_a_usage_error(mesh: Path) -> None:
    result = invoke(mesh, "--analyzer", "virtualservice.Bogus")
    assert result.exit_code == 2
    assert "unknown analyzer virtualservice.Bogus" in result.output


def test_no_input_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_RUN_ROOT", str(tmp_path))
    result = invoke()
    assert result.exit_code == 2
    assert "give manifest files or directories" in result.output
    assert "no local mesh is running" in result.output


def test_no_input_analyzes_the_running_mesh(mesh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotfish.sandbox.state import MeshState, run_dir, write_state

    monkeypatch.setenv("PILOTFISH_RUN_ROOT", str(tmp_path / "run"))
    monkeypatch.setenv("PILOTFISH_PREFIX", "pfa-")
    directory = run_dir("pfa-")
    directory.mkdir(parents=True)
    write_state(MeshState("pfa-", "r", 1, [str(mesh)], str(directory), "", "", "", "pfa-node"))
    (mesh / "vs.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: nowhere\n"
        "  namespace: default\nspec:\n  hosts: [nowhere]\n  http:\n  - route:\n    - destination:\n"
        "        host: nowhere\n"
    )
    result = invoke()
    assert result.exit_code == EXIT_FOUND_ISSUES, result.output
    assert f"{mesh}/vs.yaml:" in result.output and "nowhere" in result.output
    (mesh / "vs.yaml").unlink()
    clean = invoke()
    assert clean.exit_code == 0, clean.output
    assert f"when analyzing the running mesh ({mesh})" in clean.output


def test_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope.yaml")
    assert result.exit_code == 79
    assert result.stdout.startswith(f"Error [PF0002] ({tmp_path / 'nope.yaml'}) no such file or directory")


def test_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    broken = add(tmp_path, "broken.yaml", "kind: Service\nmetadata: [\n")
    result = invoke(broken)
    assert result.exit_code == 79
    assert result.stdout.startswith(f"Error [PF0001] ({broken}:")
    assert "Traceback" not in result.output


def test_list_analyzers() -> None:
    result = CliRunner().invoke(cli, ["analyze", "-L"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == [a.name for a in ALL]


def test_mesh_config_file(tmp_path: Path) -> None:
    """DNS auto-allocation in the mesh config gives ServiceEntries addresses (no IST0134)."""
    entries = ANALYZE_DATA / "testdata" / "serviceentry-missing-addresses-protocol.yaml"
    mesh_config = ANALYZE_DATA / "testdata" / "serviceentry-missing-addresses-protocol-mesh-cfg.yaml"
    plain = invoke(entries, "--analyzer", "serviceentry.Analyzer", "-o", "json")
    assert [r["code"] for r in json.loads(plain.stdout)] == ["IST0134"] * 3
    allocated = invoke(entries, "--analyzer", "serviceentry.Analyzer", "--mesh-config", mesh_config)
    assert allocated.exit_code == 0
    assert allocated.stdout == ""


def test_bad_mesh_config_is_reported(tmp_path: Path, mesh: Path) -> None:
    config = add(tmp_path, "mesh.yaml", "outboundTrafficPolicy: {mode: SOMETIMES}\n")
    result = invoke(mesh, "--mesh-config", config)
    assert result.exit_code == 79
    assert "IST0106" in result.stdout and "outboundTrafficPolicy.mode" in result.stdout


def test_text_output_golden(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """istioctl-style text for one of Istio's analyzer inputs (paths relative to the repository)."""
    monkeypatch.chdir(ANALYZE_DATA)
    result = invoke(
        "testdata/virtualservice_destinationhosts.yaml", "testdata/virtualservice_dupmatches.yaml"
    )
    assert result.exit_code == 79
    check_golden(request, REPO / "tests" / "golden" / "analyze" / "cli-text.txt", result.stdout)
