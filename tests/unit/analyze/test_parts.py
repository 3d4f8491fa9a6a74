"""The analyzer machinery: message catalogue, context, inventory lookups, certificates, the analyzer list."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
import yaml

from pilotfish.analyze import messages
from pilotfish.analyze.analyzer import Analyzer, did_you_mean
from pilotfish.analyze.analyzers import ALL, BY_NAME, UnknownAnalyzer, run, select
from pilotfish.analyze.context import context_from_texts
from pilotfish.certificates import certificate_problem, pem_certificates
from pilotfish.config.diagnostics import Diagnostic, Level
from pilotfish.model.build import build_mesh
from tests.paths import CONFORMANCE, REPO

ANALYZE_DATA = CONFORMANCE / "istio-analyze"
BASE = REPO / "tests" / "data" / "analyze" / "base.yaml"


# --- the catalogue ---------------------------------------------------------------------------------


def _istio_catalogue() -> dict[str, dict[str, str]]:
    data = yaml.safe_load((ANALYZE_DATA / "messages.yaml").read_text())
    return {m["code"]: m for m in data["messages"]}


def test_istio_codes_mean_what_istio_means() -> None:
    """Every IST code pilotfish uses has Istio's name, level and (modulo Go verbs) template."""
    istio = _istio_catalogue()
    for message in messages.CATALOGUE:
        if not message.code.startswith("IST"):
            continue
        theirs = istio[message.code]
        assert message.name == theirs["name"]
        assert message.level.value.capitalize() == theirs["level"]
        assert message.template == re.sub(r"%[a-z]", "{}", theirs["template"]), message.code


def test_pilotfish_codes_do_not_collide() -> None:
    codes = [m.code for m in messages.CATALOGUE]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"(IST|PF)\d{4}", c) for c in codes)


def test_go_style_formatting() -> None:
    assert messages.quoted('a"b') == '"a\\"b"'
    assert messages.golist([80, 443]) == "[80 443]"
    assert messages.REFERENCED_RESOURCE_NOT_FOUND.format("host", messages.quoted("x")) == (
        'Referenced host not found: "x"'
    )


def test_did_you_mean() -> None:
    assert did_you_mean("reveiws", ["ratings", "reviews"]) == 'did you mean "reviews"? '
    assert did_you_mean("reviews", ["reviews"]) == ""
    # the shared `.svc.cluster.local` tail does not make unrelated hosts look alike
    assert did_you_mean("sample.foo.svc.cluster.local", ["hello.hello.svc.cluster.local"]) == ""


# --- the context -----------------------------------------------------------------------------------

MIXED = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: db-cert}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
not-an-object
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  ports: [{name: tcp, port: 5432}]
"""


def test_context_keeps_invalid_objects() -> None:
    context = context_from_texts([("mixed.yaml", MIXED)])
    rule = context.find("DestinationRule", "default", "db")
    assert rule is not None and rule.obj is None  # credentialName: not supported by pilotfish yet
    assert not rule.namespace_given and rule.namespace == "default"
    assert [d.code for d in rule.parsed.diagnostics] == ["PF0004"]
    assert rule.at("spec", "trafficPolicy", "tls", "mode") == "SIMPLE"
    assert rule.origin_of(("spec", "trafficPolicy", "tls")).line == 7
    namespace = context.find("Namespace", "", "shop", "")
    assert namespace is not None and namespace.namespace == ""
    assert [d.code for d in context.input_diagnostics] == ["PF0002"]  # the document that is no object
    assert context.mesh is not None
    assert [s.hostname for s in context.mesh.services] == ["db.shop.svc.cluster.local"]


def test_duplicates_leave_no_mesh_and_are_reported() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n"
    context = context_from_texts([("a.yaml", text), ("b.yaml", text)])
    assert context.mesh is None
    found = run(context, [BY_NAME["schema.InputAnalyzer"]])
    assert [(d.code, str(d.resource), str(d.origin)) for d in found] == [
        ("PF0005", "Service default/a", "b.yaml:1")
    ]


def test_mesh_config_text() -> None:
    config = "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: 'true'\n"
    context = context_from_texts([("a.yaml", "")], ("mesh.yaml", config))
    assert context.mesh_config.default_config.proxy_metadata == {"ISTIO_META_DNS_CAPTURE": "true"}
    broken = context_from_texts([("a.yaml", "")], ("mesh.yaml", "connectTimeout: soon\n"))
    assert [d.code for d in broken.input_diagnostics] == ["IST0106"]


# --- the inventory ---------------------------------------------------------------------------------

REGISTRY = """\
apiVersion: v1
kind: Service
metadata:
  name: billing
  namespace: payments
  annotations: {networking.istio.io/exportTo: "., shop"}
spec:
  ports: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: eu, namespace: shop}
spec:
  hosts: ["*.eu.example.com"]
  exportTo: ["."]
"""


def test_destination_host_follows_export_to() -> None:
    inventory = context_from_texts([("r.yaml", REGISTRY)]).inventory
    billing = "billing.payments.svc.cluster.local"
    # the invalid `protocol: HTTP` does not hide the Service from analysis
    assert inventory.destination_host("billing", "payments") is not None
    assert inventory.destination_host(billing, "shop") is not None
    assert inventory.destination_host(billing, "default") is None
    # a VirtualService exported to other namespaces needs the host visible from one of them
    assert inventory.destination_host(billing, "default", ["shop"]) is not None
    assert inventory.destination_host(billing, "shop", ["bogus"]) is None
    # wildcard ServiceEntry hosts, within their own visibility
    assert inventory.destination_host("api.eu.example.com", "shop") is not None
    assert inventory.destination_host("*.eu.example.com", "shop") is not None
    assert inventory.destination_host("api.eu.example.com", "default") is None


def test_template_pods_are_named_like_the_model() -> None:
    context = context_from_texts([(str(BASE), BASE.read_text())])
    mesh, _ = build_mesh([r.obj for r in context.resources if r.obj is not None])
    assert mesh is not None
    assert {p.name for p in context.inventory.pods} == {w.name for w in mesh.workloads}


# --- certificates ----------------------------------------------------------------------------------


def _secret_cert(file: str, index: int) -> bytes:
    documents = list(yaml.safe_load_all((ANALYZE_DATA / "testdata" / file).read_text()))
    return base64.b64decode(documents[index]["data"]["tls.crt"])


def test_certificate_validity() -> None:
    valid = _secret_cert("gateway-secrets.yaml", 0)
    first = pem_certificates(valid)[0]
    not_before, not_after = first.not_before, first.not_after
    assert not_before < datetime(2024, 1, 1, tzinfo=UTC) < not_after
    assert certificate_problem(valid, datetime(2026, 1, 1, tzinfo=UTC)) == ""
    assert certificate_problem(valid, not_before.replace(year=not_before.year - 1)).startswith(
        "not valid before"
    )
    expired = _secret_cert("gateway-secrets-validation.yaml", 6)
    assert certificate_problem(expired, datetime(2026, 1, 1, tzinfo=UTC)).startswith("expired at ")
    assert (
        certificate_problem(b"hush hush hush\n", datetime(2026, 1, 1, tzinfo=UTC))
        == "no PEM CERTIFICATE block"
    )
    garbage = b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"
    assert certificate_problem(garbage, datetime(2026, 1, 1, tzinfo=UTC))


# --- the analyzer list -----------------------------------------------------------------------------


def test_analyzer_names_are_unique_and_described() -> None:
    assert len(BY_NAME) == len(ALL)
    assert all(a.description and re.fullmatch(r"[a-z]+\.[A-Za-z.]+", a.name) for a in ALL)


def test_select() -> None:
    assert select(["virtualservice.GatewayAnalyzer"]) == (BY_NAME["virtualservice.GatewayAnalyzer"],)
    family = select(["gateway"])
    assert [a.name for a in family] == [a.name for a in ALL if a.name.startswith("gateway.")]
    with pytest.raises(UnknownAnalyzer, match="nope"):
        select(["gateway", "nope"])


def test_run_sorts_deduplicates_and_survives_a_broken_analyzer() -> None:
    context = context_from_texts([(str(BASE), BASE.read_text())])
    twice = Diagnostic(Level.WARNING, "PF0101", "x")

    def broken(_: object) -> list[Diagnostic]:
        raise KeyError("oops")

    found = run(
        context,
        [
            Analyzer("test.Twice", "twice", lambda _: [twice, twice]),
            Analyzer("test.Broken", "raises", broken),
        ],
    )
    assert [d.code for d in found] == ["IST0001", "PF0101"]
    assert "test.Broken" in found[0].message
