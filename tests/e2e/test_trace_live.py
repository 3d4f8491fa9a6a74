"""`pilotfish trace` against the running local mesh: live config, `--verify` against the real Envoys'
access logs, `analyze` of the running mesh, and the seed's picture drawn from live config.

One mesh (Bookinfo, sleep, the ingress gateway, the external host) serves the module. The requests are
the trace cases (tests/trace_cases.py) of the local-mesh kinds - routing, traffic shifting, faults,
egress - scenario by scenario: each scenario's config is applied live, then every one of its requests
is traced from the live Envoys' config and sent for real (`--verify`), and every proxy on the path
must log the `%UPSTREAM_CLUSTER%`, `%RESPONSE_FLAGS%` and status the trace predicted.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pilotfish.cli.main import cli
from pilotfish.sandbox.components import missing_commands
from pilotfish.sandbox.runtime import available_commands
from tests.e2e.local_mesh import LocalMesh
from tests.e2e.sandbox_helpers import assert_nothing_left, free_port, mesh_copy, unique_prefix
from tests.paths import REPO
from tests.trace_cases import BOOKINFO, CASES, SCENARIOS, Case, expand
from tests.unit.simulate.conftest import scenario_mesh

pytestmark = [
    pytest.mark.netns,
    pytest.mark.envoy,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(bool(missing_commands(available_commands())),
                       reason=f"this build lacks {missing_commands(available_commands())}"),
]

NOT_LIVE = {
    # pods whose containers have no command (Istio's images): nothing would answer in the local mesh
    "excluded-outbound-range", "excluded-inbound-port", "no-sidecar-to-pod-ip", "no-sidecar-to-cluster-ip",
    "tcp-echo", "tcp-echo-other-port", "tcp-echo-ingress",
    # the modern profile needs other iptables rules in every pod
    "modern-jason", "modern-ingress", "modern-unknown-host",
    # names outside the sandbox do not resolve (external.example stands in where the path is the same)
    "registry-only-se-http", "registry-only-se-https-sni", "registry-only-https-unknown",
    "registry-only-se-cidr-tcp",
    # nothing listens there (the trace notes "the app must listen on it"): Envoy's UF is about the
    # application, not the routing
    "allow-any-other-port", "unknown-port-passthrough",
}
LIVE_CASES = [c for c in CASES if c.id not in NOT_LIVE]

EXTERNAL_ENTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
spec:
  hosts:
  - external.example
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
"""
RATINGS_DELAY_1S = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      delay:
        percentage:
          value: 100
        fixedDelay: 1s
    route:
    - destination:
        host: ratings
"""
MESH_REGISTRY_ONLY = {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
EXTRA_SCENARIOS: dict[str, tuple[dict[str, Any] | None, tuple[str, ...]]] = {
    "live-service-entry": (MESH_REGISTRY_ONLY, (EXTERNAL_ENTRY,)),
    "live-delay-1s": (None, (RATINGS_DELAY_1S,)),
}
EXTRA_CASES = [
    Case("se-registry-only", "live-service-entry", "deploy/sleep", "http://external.example/anything",
         "outbound|80||external.example", end="left-mesh"),
    Case("se-registry-only-other-host", "live-service-entry", "deploy/sleep", "http://external.example:8080/",
         "BlackHoleCluster", "UH", end="closed"),
    Case("delay-1s-all", "live-delay-1s", "deploy/productpage-v1", "http://ratings:9080/ratings/0",
         "outbound|9080||ratings.default.svc.cluster.local", "DI", reached="ratings-v1-"),
]
ALL_LIVE = LIVE_CASES + EXTRA_CASES


def _scenarios() -> list[str]:
    return list(dict.fromkeys(c.scenario for c in ALL_LIVE))


CERT_DIR = "/etc/istio/ingressgateway-certs"
"""Where the tls-gateway scenario's Gateway expects its certificate: replaced by a generated one."""


def _self_signed(directory: Path) -> None:
    """A certificate for bookinfo.example.com the gateway's Envoy (uid 1337) can read."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bookinfo.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bookinfo.example.com")]), False)
            .sign(key, hashes.SHA256()))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for path in (directory / "tls.crt", directory / "tls.key"):
        path.chmod(0o644)


@pytest.fixture(scope="module")
def mesh() -> Iterator[LocalMesh]:
    prefix = unique_prefix("t")
    with mesh_copy("bookinfo", "sleep") as directory:
        certs = directory / "certs"
        certs.mkdir(mode=0o755)
        _self_signed(certs)
        running = LocalMesh(directory, prefix, free_port())
        try:
            running.start()
            yield running
        finally:
            output = running.stop()
            assert "stopped; nothing left behind" in output, output[-2000:]
            assert_nothing_left(prefix)


def _pf(mesh: LocalMesh, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"PILOTFISH_PREFIX": mesh.prefix})


def _mesh_yaml(settings: dict[str, Any]) -> str:
    return yaml.safe_dump({"accessLogFile": "/dev/stdout", **settings}, sort_keys=False)


def apply_scenario(mesh: LocalMesh, name: str) -> None:
    """The scenario's config beyond Bookinfo and sleep, applied live: its files, its inline Istio
    objects, and its mesh config as an edit of the `istio` ConfigMap (access logs stay on)."""
    mesh.clear_config()
    if name in EXTRA_SCENARIOS:
        settings, texts = EXTRA_SCENARIOS[name]
    else:
        scenario = SCENARIOS[name]
        assert scenario.files[: len(BOOKINFO)] == BOOKINFO, name
        texts = tuple((REPO / f).read_text() for f in scenario.files[len(BOOKINFO):])
        settings = None
        kept = []
        for text in scenario.inline:
            for doc in yaml.safe_load_all(text):
                if doc["kind"] == "MeshConfig":
                    settings = doc["spec"]
                elif doc["apiVersion"].startswith("networking.istio.io/"):
                    kept.append(yaml.safe_dump(doc, sort_keys=False).replace(CERT_DIR, str(mesh.dir / "certs")))
        texts = (*texts, *kept)
    if settings is not None:
        mesh.set_mesh_config(_mesh_yaml(settings))
    mesh.apply(*texts)


def live_url(case: Case, mesh: LocalMesh) -> str:
    url = expand(case.url, scenario_mesh(case.scenario)) if case.scenario in SCENARIOS else case.url
    url = url.replace("127.0.0.1:18080", f"127.0.0.1:{mesh.port}")
    return re.sub(r"//example\.com\b", "//external.example", url)


def verify(mesh: LocalMesh, case: Case) -> tuple[Result, dict[str, Any]]:
    args = ["trace", case.source, live_url(case, mesh), "-X", case.method, "-o", "json", "--verify"]
    for header in case.headers:
        args += ["-H", header]
    if case.pick:
        args += ["--pick", case.pick]
    if case.gateway_port:
        args += ["--gateway-port", str(case.gateway_port)]
    result = _pf(mesh, *args)
    return result, json.loads(result.stdout) if result.stdout.startswith("{") else {}


def _expected(case: Case, document: dict[str, Any]) -> list[str]:
    """Where the live trace differs from the case's expectation (the offline tests hold the same).
    When Envoy took another weighted branch, the JSON is the re-traced branch: nothing to hold."""
    if document["verify"]["picked"]:
        return []
    logs = document["outcome"]["logs"]
    if case.cluster is None:
        return [] if not logs else [f"predicted logs {logs}, the case expects none"]
    first = logs[0] if logs else {}
    got = (first.get("upstream_cluster"), first.get("response_flags"), first.get("response_code"))
    return [] if got == (case.cluster, case.flags, case.code) else [f"first proxy {got}, case expects "
                                                                    f"{(case.cluster, case.flags, case.code)}"]


def test_enough_distinct_live_requests() -> None:
    requests = {(c.scenario, c.source, c.url, c.headers, c.method, c.pick) for c in ALL_LIVE}
    assert len(requests) == len(ALL_LIVE) >= 30
    kinds = {c.scenario for c in ALL_LIVE}
    assert {"test-v2", "50-v3", "80-20", "abort", "delay", "registry-only", "live-service-entry"} <= kinds


@pytest.mark.parametrize("scenario", _scenarios())
def test_every_proxy_logs_what_the_trace_predicts(mesh: LocalMesh, scenario: str) -> None:
    apply_scenario(mesh, scenario)
    problems = []
    agreed = 0
    for case in (c for c in ALL_LIVE if c.scenario == scenario):
        result, document = verify(mesh, case)
        if not document:
            problems.append(f"{case.id}: exit {result.exit_code}: {result.output[-1500:]}")
            continue
        assert document["outcome"]["end"] == case.end, (case.id, document["outcome"])
        differences = _expected(case, document)
        checked = document["verify"]
        if result.exit_code != 0 or not checked["ok"] or differences:
            problems.append(f"{case.id}: {differences} {json.dumps(checked)}")
        else:
            agreed += 1
    print(f"{scenario}: {agreed} requests verified, all proxies agree")
    assert not problems, "\n".join(problems)


def test_the_text_report_shows_each_proxys_line_and_disagreement_exits_3(mesh: LocalMesh) -> None:
    apply_scenario(mesh, "test-v2")
    agree = _pf(mesh, "trace", "productpage", "http://reviews:9080/reviews/0", "-H", "end-user: jason", "--verify")
    assert agree.exit_code == 0, agree.output
    assert "(live config of the running mesh's Envoys" in agree.output
    assert re.search(r"\[1\] productpage-v1-\S+ outbound: ok", agree.output)
    assert re.search(r"\[2\] reviews-v2-\S+ inbound: ok", agree.output)
    assert agree.output.count("log: [") == 2 and '"pilotfish-verify-' in agree.output
    assert "AGREE: 2 of 2 proxies" in agree.output
    # the prediction from other manifests (no routing: any reviews) against the live mesh (jason -> v2)
    offline = _pf(mesh, "trace", "productpage", "http://reviews:9080/reviews/0", "-H", "end-user: jason",
                  "--verify", "--manifests", str(mesh.dir / "bookinfo"), "--manifests", str(mesh.dir / "sleep"))
    assert offline.exit_code == 3, offline.output
    assert ("upstream_cluster predicted outbound|9080||reviews.default.svc.cluster.local, "
            "Envoy logged outbound|9080|v2|reviews.default.svc.cluster.local") in offline.output
    assert "DISAGREE" in offline.output


def test_live_config_follows_the_envoys(mesh: LocalMesh) -> None:
    apply_scenario(mesh, "v4")
    live = _pf(mesh, "trace", "productpage", "http://reviews:9080/reviews/0", "-o", "json")
    assert live.exit_code == 1
    document = json.loads(live.stdout)
    assert (document["outcome"]["status_code"], document["outcome"]["response_flags"]) == (503, "NC")
    offline = _pf(mesh, "trace", "productpage", "http://reviews:9080/reviews/0", "-o", "json", "--offline")
    assert json.loads(offline.stdout)["outcome"] == document["outcome"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_the_seed_picture_from_live_config(mesh: LocalMesh, tmp_path: Path) -> None:
    apply_scenario(mesh, "test-v2")
    page = mesh.pod("productpage").name
    out = tmp_path / "trace.svg"
    args = ["trace", page, "http://reviews:9080/reviews/0", "-H", "end-user: jason"]
    drawn = _pf(mesh, *args, "-o", "svg", "--out", str(out))
    assert drawn.exit_code == 0, drawn.output
    root = ET.fromstring(out.read_bytes())  # valid XML, or this raises
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = "\n".join("".join(n.itertext()) for n in root.iter("{http://www.w3.org/2000/svg}text"))
    hops = json.loads(_pf(mesh, *args, "-o", "json").stdout)["hops"]
    assert len(hops) > 15
    assert [h["name"] for h in hops if h["name"] not in texts] == []
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in texts and page in texts


def test_analyze_the_running_mesh(mesh: LocalMesh) -> None:
    apply_scenario(mesh, "v4")
    result = _pf(mesh, "analyze")
    assert result.exit_code == 79, result.output
    assert 'Referenced host+subset in destinationrule not found: "reviews+v4"' in result.output
    assert "config/virtualservice.default.reviews.yaml:" in result.output
    mesh.clear_config()
    clean = _pf(mesh, "analyze", "-o", "json")
    assert clean.exit_code == 0, clean.output
    assert [d for d in json.loads(clean.stdout) if d["level"] == "Error"] == []
