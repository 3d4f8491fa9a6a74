"""`pilotfish trace` end to end through the CLI group: formats, exit codes, usage errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pilotfish.cli.main import cli
from tests.paths import REPO
from tests.trace_cases import DR_ALL, NETWORKING

BOOKINFO = ["-f", str(REPO / "samples/bookinfo"), "-f", str(REPO / "samples/sleep/sleep.yaml")]
TEST_V2 = [
    *BOOKINFO,
    "-f",
    str(REPO / DR_ALL),
    "-f",
    str(REPO / NETWORKING / "virtual-service-reviews-test-v2.yaml"),
]
URL = "http://reviews:9080/reviews/0"


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["trace", *args])


def test_listed_in_help() -> None:
    assert "trace" in CliRunner().invoke(cli, ["--help"]).output


def test_text_for_jason() -> None:
    result = _run("deploy/productpage-v1", URL, "-H", "end-user: jason", *TEST_V2)
    assert result.exit_code == 0, result.output
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in result.output
    assert "OK: reaches reviews-v2-" in result.output
    assert "virtual-service-reviews-test-v2.yaml:10" in result.output


def test_failure_exits_1_with_the_fix(tmp_path: Path) -> None:
    vs = tmp_path / "vs.yaml"
    vs.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
        "  namespace: default\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination:\n"
        "        host: reviews\n        subset: v4\n"
    )
    result = _run("productpage-v1", URL, *BOOKINFO, "-f", str(REPO / DR_ALL), "-f", str(vs), "-o", "json")
    assert result.exit_code == 1, result.output
    outcome = json.loads(result.output)["outcome"]
    assert (outcome["status_code"], outcome["response_flags"]) == (503, "NC")
    assert f"the destination of VirtualService default/reviews http[0] ({vs}:10)" in outcome["fix"]


def test_ingress_with_method() -> None:
    result = _run("ingress", "http://127.0.0.1:18080/login", "-X", "post", *BOOKINFO)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "POST http://127.0.0.1:18080/login via the ingress gateway istio-ingressgateway"
    )
    assert "127.0.0.1:18080 is forwarded to the gateway pod" in result.output


def test_dot_output() -> None:
    result = _run("productpage-v1", URL, *BOOKINFO, "-o", "dot")
    assert result.exit_code == 0
    assert result.output.startswith("digraph trace {") and result.output.rstrip().endswith("}")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_to_file(tmp_path: Path) -> None:
    out = tmp_path / "trace.svg"
    result = _run("productpage-v1", URL, "-H", "end-user: jason", *TEST_V2, "-o", "svg", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output == ""
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "outbound|9080|v2|reviews.default.svc.cluster.local" in svg


def test_pick_follows_a_weighted_cluster() -> None:
    weighted = [
        *BOOKINFO,
        "-f",
        str(REPO / DR_ALL),
        "-f",
        str(REPO / NETWORKING / "virtual-service-reviews-80-20.yaml"),
    ]
    heaviest = _run("productpage-v1", URL, *weighted)
    picked = _run("productpage-v1", URL, *weighted, "--pick", "v2")
    assert "following the heaviest" in heaviest.output and "OK: reaches reviews-v1-" in heaviest.output
    assert "following --pick v2" in picked.output and "OK: reaches reviews-v2-" in picked.output
    unknown = _run("productpage-v1", URL, *weighted, "--pick", "v7")
    assert "note: --pick v7 names none of" in unknown.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nosuch", URL, *BOOKINFO), "no pod 'nosuch' in namespace default (pods: "),
        (("reviews", URL, *BOOKINFO), "'reviews' names several pods in namespace default"),
        (("productpage-v1", "ftp://x/", *BOOKINFO), "scheme 'ftp' is not http, https or tcp"),
        (
            ("productpage-v1", URL, "-H", "no-colon", *BOOKINFO),
            "header 'no-colon' must look like 'name: value'",
        ),
        (("productpage-v1", "tcp://reviews", *BOOKINFO), "a tcp:// URL needs a port"),
        (
            (
                "ingress",
                "http://127.0.0.1:18080/",
                *BOOKINFO,
                "-f",
                str(REPO / "tests/data/conformance/istio-samples/tcp-echo/tcp-echo-all-v1.yaml"),
            ),
            "listens on 80, 31400, not 18080: say which port the URL reaches with --gateway-port",
        ),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_without_manifests_or_a_running_mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTFISH_RUN_ROOT", str(tmp_path))
    for args in (("productpage-v1", URL), ("productpage-v1", URL, *BOOKINFO, "--verify")):
        result = _run(*args)
        assert result.exit_code == 2, result.output
        assert "no local mesh is running with prefix" in result.output
        assert "or trace offline with --manifests DIR" in result.output


def test_admin_takes_pod_equals_address() -> None:
    result = _run("productpage-v1", URL, *BOOKINFO, "--admin", "productpage-v1")
    assert result.exit_code == 2
    assert "--admin 'productpage-v1': expected POD=ADDRESS" in result.output


def test_admin_for_one_pod_reads_its_envoy(tmp_path: Path) -> None:
    result = _run("productpage-v1", URL, *BOOKINFO, "--admin", f"productpage-v1=unix:{tmp_path}/none.sock")
    assert result.exit_code == 2
    assert f"cannot reach Envoy admin at unix:{tmp_path}/none.sock" in result.output
    assert "Traceback" not in result.output


def test_invalid_manifest_is_reported_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n")
    result = _run("productpage-v1", URL, *BOOKINFO, "-f", str(broken))
    assert result.exit_code == 2
    assert f"{broken}:" in result.output
