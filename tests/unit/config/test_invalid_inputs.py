"""Each kind of invalid input gives one clear message naming the object, the field and file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from pilotfish.cli.main import cli
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.pipeline import mesh_from_texts

VS_HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
"""

SVC_HEAD = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
"""

POD_STATUS_HEAD = """\
apiVersion: pilotfish.io/v1alpha1
kind: PodStatus
metadata: {name: reviews-v1-x, namespace: default}
"""

# (id, manifest text, expected line, expected fragments of the one message)
CASES = [
    ("yaml-syntax", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n", 4, ["YAML syntax error"]),
    ("yaml-tab", "apiVersion: v1\nkind: Service\nmetadata:\n\tname: x\n", 4, ["YAML syntax error"]),
    (
        "duplicate-key",
        "apiVersion: v1\nkind: Service\nkind: Pod\nmetadata: {name: x}\n",
        3,
        ["duplicate key 'kind'"],
    ),
    ("not-a-mapping", "- just\n- a list\n", 1, ["must be a mapping"]),
    ("missing-kind", "apiVersion: v1\nmetadata: {name: x}\n", 1, ["missing apiVersion or kind"]),
    ("unknown-kind", "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n", 1, ["unknown kind 'Servise'"]),
    (
        "bad-api-version",
        "apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: x}\nspec: {}\n",
        1,
        ["Gateway default/x", "not served"],
    ),
    (
        "missing-name",
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\nspec: {}\n",
        1,
        ["metadata.name is required"],
    ),
    (
        "unknown-field",
        VS_HEAD + "  http:\n  - route:\n    - destination: {host: reviews}\n    retries:\n      attemps: 3\n",
        12,
        [
            "VirtualService default/reviews",
            "spec.http[0].retries.attemps",
            "unknown field 'attemps'",
            "did you mean 'attempts'",
        ],
    ),
    (
        "unsupported-field",
        VS_HEAD + "  http:\n  - route:\n    - destination: {host: reviews}\n    mirrors: []\n",
        11,
        ["spec.http[0].mirrors", "not supported by pilotfish yet"],
    ),
    (
        "wrong-type",
        VS_HEAD
        + "  http:\n  - route:\n    - destination:\n        host: reviews\n        port: {number: eighty}\n",
        12,
        ["spec.http[0].route[0].destination.port.number", "valid integer"],
    ),
    (
        "weight-out-of-range",
        VS_HEAD + "  http:\n  - route:\n    - destination: {host: reviews}\n      weight: 150\n",
        11,
        ["spec.http[0].route[0].weight", "less than or equal to 100"],
    ),
    (
        "bad-weight-sum",
        VS_HEAD + "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 60\n"
        "    - destination: {host: reviews, subset: v2}\n      weight: 30\n",
        9,
        ["spec.http[0]", "total destination weight 90 != 100"],
    ),
    (
        "bad-duration",
        VS_HEAD + "  http:\n  - route:\n    - destination: {host: reviews}\n    timeout: 5 seconds\n",
        11,
        ["spec.http[0].timeout", "is not a duration"],
    ),
    (
        "bad-regex",
        VS_HEAD
        + "  http:\n  - match:\n    - uri: {regex: '(['}\n    route:\n    - destination: {host: reviews}\n",
        10,
        ["spec.http[0].match[0].uri.regex", "invalid regular expression"],
    ),
    (
        "missing-required",
        VS_HEAD + "  http:\n  - route:\n    - destination: {hots: reviews}\n",
        10,
        ["spec.http[0].route[0].destination.hots", "did you mean 'host'"],
    ),
    (
        "bad-enum",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n"
        "  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBINN\n",
        8,
        ["spec.trafficPolicy.loadBalancer.simple", "ROUND_ROBIN"],
    ),
    (
        "port-out-of-range",
        SVC_HEAD + "  ports:\n  - port: 70000\n",
        7,
        ["Service default/web", "spec.ports[0].port", "65535"],
    ),
    (
        "service-field-typo",
        SVC_HEAD + "  ports:\n  - port: 80\n    protocl: TCP\n",
        8,
        ["spec.ports[0].protocl", "unknown field"],
    ),
    (
        "label-not-string",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n"
        "  subsets:\n  - name: v1\n    labels: {version: 1}\n",
        8,
        ["spec.subsets[0].labels.version", "valid string"],
    ),
    ("no-routes", VS_HEAD, 6, ["at least one http, tcp or tcp route".replace("tcp or tcp", "tcp or tls")]),
    (
        "one-of-string-match",
        VS_HEAD + "  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n    route:\n"
        "    - destination: {host: reviews}\n",
        10,
        ["exactly one of exact, prefix, regex"],
    ),
    (
        "pod-status-unquoted-condition",
        POD_STATUS_HEAD + "status:\n  conditions:\n  - type: Ready\n    status: false\n",
        7,
        ["PodStatus default/reviews-v1-x", "status.conditions[0].status", 'must be the string "False"'],
    ),
    (
        "pod-status-field-typo",
        POD_STATUS_HEAD + "status:\n  conditons: []\n",
        5,
        ["PodStatus default/reviews-v1-x", "status.conditons", "unknown field 'conditons'"],
    ),
    (
        "pod-status-bad-phase",
        POD_STATUS_HEAD + "status:\n  phase: Ready\n",
        5,
        ["status.phase", "must be one of Pending, Running"],
    ),
    (
        "pod-status-condition-value",
        POD_STATUS_HEAD + "status:\n  conditions: [{type: Ready, status: Ok}]\n",
        5,
        ["status.conditions[0].status", "'True', 'False' or 'Unknown'"],
    ),
    (
        "pod-status-without-status",
        POD_STATUS_HEAD,
        1,
        ["PodStatus default/reviews-v1-x", "field 'status' is required"],
    ),
    (
        "pod-status-duplicate",
        POD_STATUS_HEAD + "status: {phase: Running}\n---\n" + POD_STATUS_HEAD + "status: {phase: Pending}\n",
        6,
        ["PodStatus default/reviews-v1-x", "defined twice"],
    ),
    (
        "duplicate-object",
        SVC_HEAD + "  ports: [{port: 80}]\n---\n" + SVC_HEAD + "  ports: [{port: 81}]\n",
        8,
        ["Service default/web", "defined twice"],
    ),
]


def _diagnostics(text: str) -> list[Diagnostic]:
    mesh, diagnostics = mesh_from_texts([("case.yaml", text)])
    assert mesh is None, "the input should have been rejected"
    return [d for d in diagnostics if d.is_error]


@pytest.mark.parametrize(("text", "line", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_clear_error_with_file_and_line(text: str, line: int, fragments: list[str]) -> None:
    errors = _diagnostics(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    (error,) = errors
    rendered = str(error)
    assert error.origin is not None and error.origin.file == "case.yaml"
    assert error.origin.line == line, rendered
    assert rendered.startswith(f"case.yaml:{line}: error: ")
    for fragment in fragments:
        assert fragment in rendered


def test_at_least_fifteen_distinct_mistakes() -> None:
    assert len(CASES) >= 15


def test_errors_are_collected_across_objects() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {ports: [{port: 0}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: b}
        spec: {ports: [{port: 99999}]}
        """
    )
    errors = _diagnostics(text)
    assert [e.origin.line for e in errors if e.origin] == [4, 9]


@pytest.mark.parametrize(("text", "line", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_offline_cli_reports_and_exits_non_zero(tmp_path: Path, text: str, line: int, fragments: list[str]) -> None:
    (tmp_path / "case.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["proxy-config", "listener", "any-pod", "--manifests", str(tmp_path)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"case.yaml:{line}: error: " in result.output
    assert "Traceback" not in result.output
